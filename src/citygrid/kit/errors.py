"""Domain errors carry their HTTP status; one handler renders them for API and pages."""

from __future__ import annotations

from typing import Any


class CitygridError(Exception):
    """Base of every error a user may see. Messages never contain personal data."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationFailed(CitygridError):
    """Input rejected; ``details`` lists ``{"field", "reason"}`` items."""

    status_code = 422
    code = "validation_failed"

    @classmethod
    def one(cls, field: str, reason: str) -> ValidationFailed:
        """An error about a single field."""
        return cls(f"{field}: {reason}", details=[{"field": field, "reason": reason}])


class BadRequest(CitygridError):
    """A request that cannot be understood (missing or malformed parameter)."""

    status_code = 400
    code = "bad_request"


class NotFound(CitygridError):
    """Nothing there, or nothing the caller may see (the two are indistinguishable)."""

    status_code = 404
    code = "not_found"


class Forbidden(CitygridError):
    """The caller is known but may not do this."""

    status_code = 403
    code = "forbidden"


class Conflict(CitygridError):
    """The request conflicts with the current state."""

    status_code = 409
    code = "conflict"
