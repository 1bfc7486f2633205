"""Domain errors. The API maps each to an HTTP status in one table (engine.api.errors)."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base class: a machine-readable ``code``, a human ``message`` and ``details``."""

    code = "engine_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(EngineError):
    code = "config_error"


class ProvisionError(EngineError):
    code = "provision_error"


class ClusterUnavailable(EngineError):
    code = "cluster_unavailable"


class ClusterRequestError(EngineError):
    code = "cluster_request_error"


class ClusterAuthError(ClusterRequestError):
    """The cluster refused our credentials (HTTP 401): wrong or missing user/password."""

    code = "cluster_auth_failed"


class ClusterForbidden(ClusterRequestError):
    """The cluster's user lacks the permission for the request (HTTP 403)."""

    code = "cluster_forbidden"


class NotFound(EngineError):
    code = "not_found"


class InvalidInput(EngineError):
    code = "invalid_input"


class InvalidImage(InvalidInput):
    code = "invalid_image"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class ForbiddenUrl(InvalidInput):
    """A URL the service will not fetch: not http(s), or its host resolves to a loopback,
    private, link-local or otherwise non-public address that no allow-list setting permits."""

    code = "url_not_allowed"


class Unauthorized(EngineError):
    code = "unauthorized"


class ModelUnavailable(EngineError):
    code = "model_unavailable"


class ImageFetchError(InvalidImage):
    """An image could not be fetched (missing file, HTTP error, wrong content type, too big)."""

    code = "image_fetch_failed"


class IngestAborted(EngineError):
    """An ingest run stopped early (e.g. the cluster went away); its checkpoint is intact."""

    code = "ingest_aborted"


class Conflict(EngineError):
    """A concurrent change won (e.g. two writers creating the same tuning version)."""

    code = "conflict"


class AdminDisabled(EngineError):
    """The admin API is off because no admin API key is configured."""

    code = "admin_disabled"
