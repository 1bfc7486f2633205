"""engine.backend turns opensearch-py transport errors into engine.errors (no node needed)."""

from __future__ import annotations

import pytest
from opensearchpy import exceptions as os_exc

from engine.backend_errors import domain_error as _domain_error
from engine.errors import (
    ClusterAuthError,
    ClusterForbidden,
    ClusterRequestError,
    ClusterUnavailable,
    NotFound,
)

SECURITY_401 = {"error": {"root_cause": [{"type": "security_exception", "reason": "Unauthorized"}]}}


@pytest.mark.parametrize(
    ("exc", "cls", "status"),
    [
        (
            os_exc.AuthenticationException(401, "security_exception", SECURITY_401),
            ClusterAuthError,
            401,
        ),
        (os_exc.AuthorizationException(403, "security_exception", {}), ClusterForbidden, 403),
        (os_exc.NotFoundError(404, "index_not_found_exception", {}), NotFound, None),
        (os_exc.ConnectionError("N/A", "refused", None), ClusterUnavailable, None),
        (os_exc.TransportError(503, "unavailable", {}), ClusterUnavailable, None),
        (os_exc.RequestError(400, "parsing_exception", {}), ClusterRequestError, 400),
    ],
)
def test_transport_errors_become_domain_errors(
    exc: Exception, cls: type, status: int | None
) -> None:
    err = _domain_error("search outfit-products", exc)  # type: ignore[arg-type]
    assert type(err) is cls
    assert err.message.startswith("search outfit-products")
    if status is not None:
        assert err.details["status"] == status


def test_auth_errors_are_request_errors_with_a_hint() -> None:
    err = _domain_error("info", os_exc.AuthenticationException(401, "x", SECURITY_401))
    assert isinstance(err, ClusterRequestError)  # 502 from the API, like other cluster refusals
    assert "OUTFIT_CLUSTER__PASSWORD" in err.message
    assert err.details["reason"] == "security_exception: Unauthorized"
