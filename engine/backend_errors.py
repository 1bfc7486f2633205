"""OpenSearch transport errors as :mod:`engine.errors`: an unreachable cluster (or a 502/503/504
after the client's retries) is :class:`ClusterUnavailable`, 401 :class:`ClusterAuthError`, 403
:class:`ClusterForbidden`, 404 :class:`NotFound`, any other rejection
:class:`ClusterRequestError`; the server's reason goes into ``details``, credentials never."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opensearchpy import exceptions as os_exc

from engine.errors import (
    ClusterAuthError,
    ClusterForbidden,
    ClusterRequestError,
    ClusterUnavailable,
    EngineError,
    NotFound,
)


def _reason(exc: os_exc.TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error")
    if isinstance(err, dict):
        root = err.get("root_cause") or [err]
        first = root[0] if isinstance(root, list) and root else err
        if isinstance(first, dict):
            return f"{first.get('type', 'error')}: {first.get('reason', '')}"
    return str(exc.error)


def domain_error(what: str, exc: os_exc.TransportError) -> EngineError:
    """The :mod:`engine.errors` exception for an opensearch-py transport error."""
    if isinstance(exc, os_exc.NotFoundError):
        return NotFound(f"{what}: not found", reason=_reason(exc))
    if isinstance(exc, os_exc.ConnectionError | os_exc.ConnectionTimeout):
        return ClusterUnavailable(f"{what}: cluster unreachable ({exc.error})")
    if isinstance(exc, os_exc.AuthenticationException):
        # the reason is the server's; credentials never go into messages or details
        return ClusterAuthError(
            f"{what}: the cluster refused the credentials (401); check "
            "OUTFIT_CLUSTER__USERNAME and OUTFIT_CLUSTER__PASSWORD",
            status=401,
            reason=_reason(exc),
        )
    if isinstance(exc, os_exc.AuthorizationException):
        return ClusterForbidden(
            f"{what}: the cluster user lacks the permission (403) {_reason(exc)}",
            status=403,
            reason=_reason(exc),
        )
    status = exc.status_code if isinstance(exc.status_code, int) else None
    if status is not None and status >= 500 and status != 500:
        return ClusterUnavailable(f"{what}: cluster error {status}", reason=_reason(exc))
    return ClusterRequestError(
        f"{what}: rejected ({status}) {_reason(exc)}", status=status, reason=_reason(exc)
    )


@contextmanager
def translate(what: str) -> Iterator[None]:
    try:
        yield
    except os_exc.TransportError as exc:
        raise domain_error(what, exc) from exc
