"""Fetch untrusted http(s) URLs without reaching private networks (no server-side request forgery).

Every URL the service fetches on someone's behalf (a photo URL sent to the API, an image URL in a
catalog being ingested) goes through :class:`SafeFetcher`:

* only ``http`` and ``https``;
* the host is resolved once and **every** address it resolves to must be public: loopback,
  private, link-local (cloud metadata at 169.254.169.254), multicast, reserved, unspecified,
  shared (100.64.0.0/10) addresses and IPv6 forms embedding one (``::ffff:127.0.0.1``, 6to4,
  Teredo, NAT64, IPv4-compatible) are refused, so are numeric spellings such as
  ``http://2130706433`` or ``http://0x7f000001`` (the resolver turns them into 127.0.0.1);
* the connection goes to exactly the address that was checked (the check runs inside the
  transport's connect step, so a second DNS answer cannot swap in another address); the URL keeps
  its hostname, so the Host header, TLS SNI and certificate checks use the name;
* redirects are followed by hand (at most ``max_redirects``), each hop checked the same way;
* the body is streamed and stops at ``max_bytes``;
* no proxies or ``.netrc`` from the environment (a proxy would do the connecting for us).

An allow-list (:class:`HostAllowList`: host names, IP addresses or CIDR networks) lets named
internal hosts through. Refusals raise :class:`engine.errors.ForbiddenUrl`.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from engine.errors import ForbiddenUrl, PayloadTooLarge

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_MAX_REDIRECTS = 3

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible IPv6


# --------------------------------------------------------------------------- classification


def _embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (6to4, Teredo, NAT64, IPv4-compatible)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _own_problem(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    return None


def address_problem(address: str | IPAddress) -> str | None:
    """Why ``address`` is not a public internet address (None: it is public)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        inner = address_problem(ip.ipv4_mapped)  # ::ffff:a.b.c.d is a.b.c.d
        return None if inner is None else f"{inner} (IPv4 {ip.ipv4_mapped} inside IPv6)"
    if isinstance(ip, ipaddress.IPv6Address):
        for v4 in _embedded_v4(ip):
            inner = address_problem(v4)
            if inner is not None:
                return f"{inner} (IPv4 {v4} inside IPv6)"
    problem = _own_problem(ip)
    if problem is None and not ip.is_global:
        problem = "not globally routable"
    return problem


def is_public_address(address: str | IPAddress) -> bool:
    return address_problem(address) is None


def _plain(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as IPv4 (so allow-list entries match either form)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# --------------------------------------------------------------------------- allow-list


def _norm_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class HostAllowList:
    """Internal hosts let through anyway: exact host names (any address they resolve to is
    accepted: their DNS is trusted) and IP addresses / CIDR networks (matched against the
    resolved addresses)."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str] | HostAllowList | None) -> HostAllowList:
        if isinstance(entries, HostAllowList):
            return entries
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries or ():
            entry = raw.strip()
            if not entry:
                continue
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                if "/" in entry or ":" in entry:
                    raise ValueError(
                        f"allowed host {raw!r} is neither a host name nor an IP address/network"
                    ) from None
            host = _norm_host(entry)
            if not host or any(not (c.isalnum() or c in "-._") for c in host):
                raise ValueError(f"allowed host {raw!r} is not a valid host name")
            names.add(host)
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return _norm_host(host) in self.names

    def allows_address(self, address: str | IPAddress) -> bool:
        ip = _plain(ipaddress.ip_address(address) if isinstance(address, str) else address)
        return any(ip.version == net.version and ip in net for net in self.networks)

    def __bool__(self) -> bool:
        return bool(self.names or self.networks)


def resolve_checked(host: str, port: int, allow: HostAllowList) -> list[str]:
    """Resolve ``host`` once; every address must be public or allow-listed -> the addresses.

    Raises :class:`ForbiddenUrl` (naming the first bad address) or
    :class:`httpcore.ConnectError` when the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: no addresses")
    if allow.allows_name(host):
        return addresses
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])  # without an IPv6 zone index
        if allow.allows_address(ip):
            continue
        problem = address_problem(ip)
        if problem is not None:
            raise ForbiddenUrl(
                f"url not allowed: host {host!r} resolves to {address} ({problem}), "
                "not a public address",
                host=host,
                address=address,
                reason=problem,
            )
    return addresses


# --------------------------------------------------------------------------- transport


class _CheckedBackend(httpcore.SyncBackend):
    """httpcore network backend whose TCP connect resolves, checks and connects to the checked
    address itself (the IP, not the name, reaches ``socket.create_connection``)."""

    def __init__(self, allow: HostAllowList) -> None:
        self.allow = allow

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in resolve_checked(host, port, self.allow):
            try:
                return super().connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise ForbiddenUrl("url not allowed: unix sockets are never used", reason="unix socket")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once (loading the CA bundle takes a while)."""
    return httpx.create_ssl_context()


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that connects through :class:`_CheckedBackend`
    (no proxy: a proxy would resolve and connect on our behalf)."""

    def __init__(self, allow: HostAllowList, *, max_connections: int) -> None:
        ssl_context = _ssl_context()
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=_CheckedBackend(allow),
        )


# --------------------------------------------------------------------------- fetching


def require_success(resp: httpx.Response) -> None:
    """The default response check: a 2xx status, else :class:`httpx.HTTPStatusError`."""
    if not resp.is_success:
        raise httpx.HTTPStatusError(
            f"HTTP {resp.status_code} for {resp.request.url}", request=resp.request, response=resp
        )


class SafeFetcher:
    """Fetches untrusted URLs under the rules in this module's docstring; thread-safe (one
    connection pool). Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        allow: Iterable[str] | HostAllowList | None = None,
        *,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        max_connections: int = 16,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ) -> None:
        self.allow = HostAllowList.parse(allow)
        self.max_redirects = max_redirects
        self._client = httpx.Client(
            transport=_CheckedTransport(self.allow, max_connections=max_connections),
            timeout=httpx.Timeout(timeout_s),
            headers=headers,
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SafeFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int,
        check: Callable[[httpx.Response], None] = require_success,
    ) -> bytes:
        """The body of ``url`` after redirects (at most ``max_bytes``).

        ``check`` sees the final response before its body is read (default: a 2xx status).
        Raises :class:`ForbiddenUrl` (scheme or address refused, on any hop),
        :class:`PayloadTooLarge` (declared or streamed size over ``max_bytes``),
        :class:`httpx.InvalidURL` and :class:`httpx.HTTPError` (network, timeouts, too many
        redirects, and whatever ``check`` raises)."""
        current = httpx.URL(url)
        for hop in range(self.max_redirects + 1):
            if current.scheme not in ALLOWED_SCHEMES:
                raise ForbiddenUrl(
                    f"url not allowed: scheme {current.scheme!r} (only http and https)",
                    url=url,
                    reason="scheme",
                    **({"redirected_to": str(current)} if hop else {}),
                )
            try:
                with self._client.stream("GET", current) as resp:
                    if resp.next_request is not None:  # a redirect with a Location
                        current = resp.next_request.url
                        continue
                    check(resp)
                    return _read_capped(resp, max_bytes, url)
            except ForbiddenUrl as exc:
                exc.details.setdefault("url", url)
                if hop:
                    exc.details.setdefault("redirected_to", str(current))
                raise
        raise httpx.TooManyRedirects(
            f"more than {self.max_redirects} redirects for {url}",
            request=self._client.build_request("GET", current),
        )


def _read_capped(resp: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(
            f"response too large: {declared} bytes > limit of {max_bytes} bytes",
            url=url,
            size=int(declared),
            max_bytes=max_bytes,
        )
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf.extend(chunk)
        if len(buf) > max_bytes:
            raise PayloadTooLarge(
                f"response too large: more than {max_bytes} bytes",
                url=url,
                max_bytes=max_bytes,
            )
    return bytes(buf)
