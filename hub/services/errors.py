"""Domain errors the services raise; ``hub.app`` maps each to one HTTP status."""

from __future__ import annotations


class HubError(Exception):
    """Base: ``code`` is a stable machine-readable reason, the message is for humans."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        """Keep the message; ``code`` overrides the class default."""
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(HubError):
    """Missing, or outside the caller's scope (the two are indistinguishable on purpose)."""

    status_code = 404
    code = "not_found"


class Forbidden(HubError):
    """The caller's role may not do this at all."""

    status_code = 403
    code = "forbidden"


class Unauthorized(HubError):
    """No credentials, or credentials that are unknown, expired or revoked."""

    status_code = 401
    code = "unauthorized"


class Conflict(HubError):
    """The request collides with existing state (duplicate id, ...)."""

    status_code = 409
    code = "conflict"


class Invalid(HubError):
    """Well-formed but semantically wrong input (unknown zone for a store, ...)."""

    status_code = 422
    code = "invalid"


class RateLimited(HubError):
    """Too many attempts; retry after ``retry_after_s``."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int, code: str | None = None) -> None:
        """Keep how long the caller should wait."""
        super().__init__(message, code)
        self.retry_after_s = retry_after_s


class CheckinRefused(HubError):
    """A check-in that fraud rules or code verification refused."""

    status_code = 403
    code = "checkin_refused"
