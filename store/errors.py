"""Typed store errors: one small tree, shared by the state machine, the server and the client.

Every error has a stable string ``code`` that travels on the wire (``{"error": {"code",
"message", ...}}``) and an HTTP status the server answers with.  The client turns the wire form
back into the same class with :func:`from_wire`, so callers catch the same types whether the
error was raised locally or by a remote replica.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Compacted",
    "FutureRevision",
    "InvalidRequest",
    "KeyNotFound",
    "LeaseNotFound",
    "NotLeader",
    "OutcomeUnknown",
    "RequestExpired",
    "StoreError",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "from_wire",
]


class StoreError(Exception):
    """Base of every store error.  ``code`` is the wire name, ``http_status`` the HTTP code."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.message == other.message
            and self.details == other.details
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class InvalidRequest(StoreError):
    """Malformed input: wrong types, unknown ops or fields, bad CBOR.  Nothing was changed."""

    code = "invalid_request"
    http_status = 400


class Unauthenticated(StoreError):
    """The connection's client certificate is missing, from another CA, expired or not yet
    valid (the message says which).  The request was refused before it was read."""

    code = "unauthenticated"
    http_status = 401


class TooLarge(StoreError):
    """A key, value, request or txn is over a documented limit.  Nothing was changed."""

    code = "too_large"
    http_status = 413


class KeyNotFound(StoreError):
    code = "key_not_found"
    http_status = 404


class LeaseNotFound(StoreError):
    code = "lease_not_found"
    http_status = 404


class Compacted(StoreError):
    """The requested revision is older than the compaction point.  ``compact_revision`` says
    the oldest revision still readable."""

    code = "compacted"
    http_status = 410


class FutureRevision(StoreError):
    code = "future_revision"
    http_status = 400


class RequestExpired(StoreError):
    """A retried request id is older than the deduplication window remembers."""

    code = "request_expired"
    http_status = 409


class NotLeader(StoreError):
    """This replica is not the leader; ``leader`` (a client URL or None) says where to go."""

    code = "not_leader"
    http_status = 421


class Unavailable(StoreError):
    """No leader, no quorum, or the replica is shutting down: the request was not applied."""

    code = "unavailable"
    http_status = 503


class OutcomeUnknown(StoreError):
    """The write may or may not have been applied (leader lost, timeout after sending).

    Never treat this as failure: retry with the same request id, or read to find out."""

    code = "outcome_unknown"
    http_status = 504


_BY_CODE: dict[str, type[StoreError]] = {
    cls.code: cls
    for cls in (
        StoreError,
        InvalidRequest,
        TooLarge,
        Unauthenticated,
        KeyNotFound,
        LeaseNotFound,
        Compacted,
        FutureRevision,
        RequestExpired,
        NotLeader,
        Unavailable,
        OutcomeUnknown,
    )
}


def from_wire(data: Any) -> StoreError:
    """Rebuild an error from its wire form; anything unrecognised becomes a plain StoreError."""
    if not isinstance(data, dict):
        return StoreError(f"malformed error: {data!r}")
    details = {k: v for k, v in data.items() if k not in ("code", "message")}
    cls = _BY_CODE.get(str(data.get("code")), StoreError)
    return cls(str(data.get("message", "")), **details)
