"""One exception root for the project; each error carries a machine code and the HTTP status it maps to."""

from __future__ import annotations

from typing import Any

from core.states import RejectReason


class ServiceError(Exception):
    """Root of every error this project raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ArtifactRejected(ServiceError):
    """A model artifact failed verification; `reason` is a short stable code (used as a metrics label)."""

    status = 422
    code = "artifact_rejected"

    def __init__(self, reason: RejectReason | str, message: str, name: str | None = None) -> None:
        super().__init__(f"{reason}: {message}", {"reason": str(reason), "artifact": name})
        self.reason = RejectReason(reason)
        self.name = name


class PublishUnverified(ServiceError):
    """The trainer's own artifact did not verify when read back after publishing; nothing was retired."""

    status = 500
    code = "publish_unverified"


class StoreUnavailable(ServiceError):
    """The bucket could not be reached after the client's retries."""

    status = 503
    code = "store_unavailable"


class StoreRefused(ServiceError):
    """The bucket refused a request (permissions, a bad request): retrying would not help."""

    status = 502
    code = "store_refused"
