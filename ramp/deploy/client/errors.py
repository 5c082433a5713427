"""What the client raises: the server's 4xx/5xx as ``RampHTTPError`` (status, code, field,
message), an unreachable server as ``RampUnavailable``."""

from __future__ import annotations

import json
from typing import Any

RETRYABLE = {404, 408, 425, 429, 500, 502, 503, 504}


class RampError(Exception):
    """Base of every client error."""


class RampUnavailable(RampError):
    """The server could not be reached (refused, reset, timed out): retry later."""


class RampHTTPError(RampError):
    """The server answered with an error; ``field`` names what was wrong with the request."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str = "",
        retry_after: float | None = None,
    ):
        self.status, self.code, self.field, self.message = status, code, field, message
        self.retry_after = retry_after
        where = f"{field}: " if field else ""
        super().__init__(f"{status} {code}: {where}{message}")

    @property
    def retryable(self) -> bool:
        """True for answers that may succeed later (rate limit, server trouble, not deployed)."""
        return self.status in RETRYABLE

    @classmethod
    def from_error(cls, status: int, body: Any, retry_after: float | None = None) -> RampHTTPError:
        """From an error body: ``{"error": {...}}`` as a dict, JSON bytes, or anything else."""
        if isinstance(body, bytes | str):
            try:
                body = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
                return cls(status, "http_error", text[:500], retry_after=retry_after)
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return cls(status, "http_error", str(body)[:500], retry_after=retry_after)
        return cls(
            int(err.get("status", status)),
            str(err.get("code", "http_error")),
            str(err.get("message", "")),
            str(err.get("field", "")),
            retry_after,
        )
