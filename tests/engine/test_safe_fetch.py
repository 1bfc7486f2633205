"""Server-side request forgery guard: address classes, allow-lists, pinned connections, redirects.

Traffic only ever goes to loopback servers started here (127.0.0.1 and 127.0.0.2, on the same
port); public addresses are only classified, never contacted.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest
from pydantic import ValidationError

from engine.errors import ForbiddenUrl, PayloadTooLarge
from engine.safe_fetch import HostAllowList, SafeFetcher, address_problem, is_public_address
from engine.settings import ApiSettings, Settings


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety net: whatever a regression does, no socket is opened to anything but loopback
    (and only to an IP address: the guard always connects to the address it checked)."""
    real = httpcore.SyncBackend.connect_tcp

    def guarded(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        ip = ipaddress.ip_address(host)  # ValueError for a name: it was not pinned
        if not (getattr(ip, "ipv4_mapped", None) or ip).is_loopback:
            raise AssertionError(f"test tried to connect to non-loopback {host}")
        return real(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", guarded)


# --------------------------------------------------------------------------- classification

BLOCKED = {
    "127.0.0.1": "loopback",
    "127.0.0.2": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",  # cloud metadata service
    "fe80::1": "link-local",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "100.64.0.1": "shared",
    "100.127.255.254": "shared",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "fc00::1": "private",  # unique local
    "fec0::1": "site-local",
    "0.1.2.3": "private",  # "this network"
    "192.0.2.1": "private",  # documentation
    "::ffff:127.0.0.1": "loopback (IPv4 127.0.0.1 inside IPv6)",
    "::ffff:10.0.0.1": "private (IPv4 10.0.0.1 inside IPv6)",
    "::ffff:169.254.169.254": "link-local",
    "::7f00:1": "loopback (IPv4 127.0.0.1 inside IPv6)",  # IPv4-compatible
    "2002:7f00:1::": "loopback (IPv4 127.0.0.1 inside IPv6)",  # 6to4
    "2002:c0a8:101::1": "private (IPv4 192.168.1.1 inside IPv6)",  # 6to4
    "64:ff9b::a9fe:a9fe": "link-local (IPv4 169.254.169.254 inside IPv6)",  # NAT64
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": "inside IPv6",  # Teredo, client 192.0.2.45
}


@pytest.mark.parametrize("address", sorted(BLOCKED))
def test_non_public_addresses_are_refused(address: str) -> None:
    problem = address_problem(address)
    assert problem is not None and BLOCKED[address] in problem
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    # classification only: nothing is ever sent to these
    assert address_problem(address) is None and is_public_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://017700000001/",
        "http://localhost/",
        "http://LocalHost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://127.0.0.1:9200/_cat/indices",
        "https://127.0.0.1/",
    ],
)
def test_numeric_and_local_spellings_are_refused(url: str) -> None:
    # every one resolves (without DNS) to a non-public address: refused before any connect
    with SafeFetcher() as f, pytest.raises(ForbiddenUrl) as exc:
        f.fetch(url, max_bytes=100)
    assert exc.value.code == "url_not_allowed"
    assert exc.value.details["url"] == url and exc.value.details["reason"]


def test_dotted_octal_is_not_even_a_url() -> None:
    with SafeFetcher() as f, pytest.raises(httpx.InvalidURL):
        f.fetch("http://0177.0.0.1/", max_bytes=100)


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "gopher://x/"])
def test_other_schemes_are_refused(url: str) -> None:
    with SafeFetcher() as f, pytest.raises(ForbiddenUrl, match="scheme"):
        f.fetch(url, max_bytes=100)


# --------------------------------------------------------------------------- allow-list


def test_allow_list_parsing() -> None:
    allow = HostAllowList.parse(["Images.Internal.", "10.20.0.0/16", "127.0.0.2", "[::1]", " "])
    assert allow.names == frozenset({"images.internal"})
    assert allow.allows_name("IMAGES.internal") and not allow.allows_name("evil.internal")
    assert allow.allows_address("10.20.3.4") and not allow.allows_address("10.21.0.1")
    assert allow.allows_address("127.0.0.2") and not allow.allows_address("127.0.0.1")
    assert allow.allows_address("::ffff:127.0.0.2")  # the mapped form matches the IPv4 entry
    assert allow.allows_address("::1")
    assert not HostAllowList.parse([])
    for bad in ("10.0.0.0/33", "host:8080", "bad host", "a/b"):
        with pytest.raises(ValueError):
            HostAllowList.parse([bad])


def test_allow_list_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTFIT_INGEST__URL_ALLOWED_HOSTS", '["images.internal", "10.0.0.0/8"]')
    monkeypatch.setenv("OUTFIT_API__URL_ALLOWED_HOSTS", '["cdn.internal"]')
    s = Settings()
    assert s.ingest.url_allowed_hosts == ["images.internal", "10.0.0.0/8"]
    assert s.api.url_allowed_hosts == ["cdn.internal"]
    monkeypatch.delenv("OUTFIT_API__URL_ALLOWED_HOSTS")
    assert Settings().api.url_allowed_hosts == []  # the API's default: nothing internal
    with pytest.raises(ValidationError):
        ApiSettings(url_allowed_hosts=["10.0.0.0/33"])


# --------------------------------------------------------------------------- local servers

PNG_A = b"\x89PNG from 127.0.0.1"
PNG_B = b"\x89PNG from 127.0.0.2"


@dataclass
class Server:
    httpd: ThreadingHTTPServer
    host: str
    port: int
    connections: int = 0
    paths: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        self.connections = 0
        self.paths.clear()


def _serve(host: str, port: int, body: bytes) -> Server:
    holder: dict[str, Server] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            srv = holder["s"]
            srv.paths.append(self.path)
            if self.path.startswith("/redirect?to="):
                self.send_response(302)
                self.send_header("Location", self.path.split("=", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/big":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"\0" * 5000)  # no Content-Length: streamed
                self.close_connection = True
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Counting(ThreadingHTTPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            holder["s"].connections += 1  # every accepted TCP connection
            return True

    httpd = Counting((host, port), Handler)
    srv = Server(httpd, host, httpd.server_address[1])
    holder["s"] = srv
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """(a server on 127.0.0.1, one on 127.0.0.2), on the same port: a connection that went to
    the wrong address would reach the 127.0.0.1 one and be counted."""
    for _ in range(20):
        b = _serve("127.0.0.2", 0, PNG_B)
        try:
            a = _serve("127.0.0.1", b.port, PNG_A)
            break
        except OSError:
            b.httpd.shutdown()
            b.httpd.server_close()
    else:  # pragma: no cover - no shared free port found
        pytest.skip("no port free on both 127.0.0.1 and 127.0.0.2")
    yield a, b
    for s in (a, b):
        s.httpd.shutdown()
        s.httpd.server_close()


@pytest.fixture
def pair(servers: tuple[Server, Server]) -> tuple[Server, Server]:
    for s in servers:
        s.reset()
    return servers


def test_loopback_server_is_never_contacted(pair: tuple[Server, Server]) -> None:
    a, b = pair
    with SafeFetcher() as f:
        for url in (f"{a.url}/img.png", f"{b.url}/img.png"):
            with pytest.raises(ForbiddenUrl, match="loopback") as exc:
                f.fetch(url, max_bytes=1000)
            assert exc.value.details["address"] in ("127.0.0.1", "127.0.0.2")
    assert a.connections == 0 and b.connections == 0 and a.paths == b.paths == []


def test_allow_listed_internal_host_is_fetched(pair: tuple[Server, Server]) -> None:
    a, b = pair
    for entry in ("127.0.0.2", "127.0.0.0/30"):
        with SafeFetcher([entry]) as f:
            assert f.fetch(f"{b.url}/img.png", max_bytes=1000) == PNG_B
    with SafeFetcher(["127.0.0.2"]) as f, pytest.raises(ForbiddenUrl):
        f.fetch(f"{a.url}/img.png", max_bytes=1000)  # 127.0.0.1 is not on that list
    assert a.connections == 0 and b.paths == ["/img.png", "/img.png"]
    with SafeFetcher(["localhost"]) as f:  # a name on the list: its addresses are trusted
        assert f.fetch(f"http://localhost:{a.port}/img.png", max_bytes=1000) == PNG_A


def test_redirect_to_a_refused_address_is_not_followed(pair: tuple[Server, Server]) -> None:
    a, b = pair
    with SafeFetcher(["127.0.0.2"]) as f:
        target = f"{a.url}/img.png"
        with pytest.raises(ForbiddenUrl) as exc:
            f.fetch(f"{b.url}/redirect?to={target}", max_bytes=1000)
        assert exc.value.details["redirected_to"] == target
        assert exc.value.details["url"] == f"{b.url}/redirect?to={target}"
        for spelled in (f"http://2130706433:{a.port}/x", f"http://[::ffff:127.0.0.1]:{a.port}/"):
            with pytest.raises(ForbiddenUrl):
                f.fetch(f"{b.url}/redirect?to={spelled}", max_bytes=1000)
        with pytest.raises(ForbiddenUrl, match="scheme"):
            f.fetch(f"{b.url}/redirect?to=file:///etc/passwd", max_bytes=1000)
        # redirects between allowed places are followed
        assert f.fetch(f"{b.url}/redirect?to=/img.png", max_bytes=1000) == PNG_B
    assert a.connections == 0 and a.paths == []


def test_redirect_hops_are_capped(pair: tuple[Server, Server]) -> None:
    _, b = pair
    with SafeFetcher(["127.0.0.2"], max_redirects=3) as f, pytest.raises(httpx.TooManyRedirects):
        f.fetch(f"{b.url}/loop", max_bytes=1000)
    assert b.paths == ["/loop"] * 4  # the request and 3 redirects


def test_body_is_size_capped(pair: tuple[Server, Server]) -> None:
    _, b = pair
    with SafeFetcher(["127.0.0.2"]) as f:
        with pytest.raises(PayloadTooLarge):
            f.fetch(f"{b.url}/big", max_bytes=1000)  # streamed, no Content-Length
        with pytest.raises(PayloadTooLarge) as exc:
            f.fetch(f"{b.url}/img.png", max_bytes=5)  # declared Content-Length
        assert exc.value.details["size"] == len(PNG_B)


def _fake_resolver(
    monkeypatch: pytest.MonkeyPatch, name: str, answers: list[list[str]]
) -> list[str]:
    """socket.getaddrinfo answering ``name`` with successive ``answers`` (the last repeats);
    numeric hosts go to the real resolver. Returns the log of lookups of ``name``."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        answer = answers[min(len(lookups), len(answers) - 1)]
        lookups.append(",".join(answer))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port))) for ip in answer]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return lookups


def test_dns_rebinding_connects_to_the_checked_address(
    pair: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """First answer: an allowed address; any later answer: 127.0.0.1. The connection must go
    to the address that was checked, and nothing may look the name up again for it."""
    a, b = pair
    name = "images.rebind.test"
    lookups = _fake_resolver(monkeypatch, name, [["127.0.0.2"], ["127.0.0.1"]])
    with SafeFetcher(["127.0.0.2"]) as f:
        assert f.fetch(f"http://{name}:{b.port}/img.png", max_bytes=1000) == PNG_B
        assert f.fetch(f"http://{name}:{b.port}/again.png", max_bytes=1000) == PNG_B
    assert lookups == ["127.0.0.2"]  # one lookup; the kept-alive connection served both
    assert b.paths == ["/img.png", "/again.png"] and b.connections == 1
    assert a.connections == 0
    # a new connection resolves again, gets the rebound answer and is refused
    with SafeFetcher(["127.0.0.2"]) as f, pytest.raises(ForbiddenUrl, match="127.0.0.1"):
        f.fetch(f"http://{name}:{b.port}/img.png", max_bytes=1000)
    assert lookups == ["127.0.0.2", "127.0.0.1"] and a.connections == 0


def test_every_resolved_address_must_pass(
    pair: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    name = "mixed.test"
    _fake_resolver(monkeypatch, name, [["127.0.0.2", "10.1.2.3"]])
    with SafeFetcher(["127.0.0.2"]) as f, pytest.raises(ForbiddenUrl, match="10.1.2.3"):
        f.fetch(f"http://{name}:{b.port}/img.png", max_bytes=1000)
    assert a.connections == 0 and b.connections == 0


def test_unresolvable_host_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with SafeFetcher() as f, pytest.raises(httpx.ConnectError, match="cannot resolve"):
        f.fetch("http://nowhere.invalid/a.png", max_bytes=100)


def test_environment_proxies_are_ignored(
    pair: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    monkeypatch.setenv("HTTP_PROXY", a.url)  # a proxy on a refused address
    monkeypatch.setenv("ALL_PROXY", a.url)
    with SafeFetcher(["127.0.0.2"]) as f:
        assert f.fetch(f"{b.url}/img.png", max_bytes=1000) == PNG_B
    assert a.connections == 0
