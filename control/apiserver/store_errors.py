"""The one translation of store errors into API errors, used by :mod:`control.apiserver.storage`
(the API error tree itself is :mod:`control.api.errors`, shared with the clients)."""

from __future__ import annotations

from control.api.errors import (
    CONTINUE_EXPIRED,
    CONTINUE_INCONSISTENT,
    LIST_EXPIRED,
    APIError,
    Cause,
    Expired,
    InternalError,
    NotFound,
    ServiceUnavailable,
    Timeout,
    TooLarge,
)
from store import errors as store_errors

__all__ = ["from_store_error"]


def from_store_error(
    exc: store_errors.StoreError,
    *,
    resource: str = "",
    group: str = "",
    name: str = "",
    resource_version: int | None = None,
    listing: bool = False,
    paging: bool = False,
    continue_token: str | None = None,
) -> APIError:
    """The one translation of a store error into an API error (never raises it).

    ``Compacted`` → 410 Expired: for a list page from a continue token (``paging``) the
    continue-expired text, carrying ``continue_token`` (an inconsistent continuation) when
    given; for a list, ``The resourceVersion for the provided list is too old.``; otherwise
    (watch) ``too old resource version: <resource_version> (<compact revision>)``.
    ``FutureRevision`` → 504 Timeout ``Too large resource version`` (cause
    ``ResourceVersionTooLarge``).  ``OutcomeUnknown`` → 504 Timeout (the write may have been
    applied: never reported as failed).  ``Unavailable``/``NotLeader`` → 503.  ``TooLarge`` →
    413.  ``KeyNotFound`` → 404 for ``resource``/``name``.  Anything else (``InvalidRequest``,
    ``LeaseNotFound``, ...) means we sent a bad request: 500 InternalError.
    """
    if isinstance(exc, store_errors.Compacted):
        if paging:
            if continue_token:
                return Expired(CONTINUE_INCONSISTENT, continue_token=continue_token)
            return Expired(CONTINUE_EXPIRED)
        if listing:
            return Expired(LIST_EXPIRED)
        oldest = exc.details.get("compact_revision", 0)
        return Expired(f"too old resource version: {resource_version or 0} ({oldest})")
    if isinstance(exc, store_errors.FutureRevision):
        wanted = resource_version or exc.details.get("revision", 0)
        current = exc.details.get("current_revision", 0)
        return Timeout(f"Too large resource version: {wanted}, current: {current}", 1,
                       [Cause("ResourceVersionTooLarge", "Too large resource version")])
    if isinstance(exc, store_errors.OutcomeUnknown):
        return Timeout(f"request did not complete within requested timeout - {exc.message}")
    if isinstance(exc, (store_errors.Unavailable, store_errors.NotLeader)):
        return ServiceUnavailable(f"storage is unavailable: {exc.message}")
    if isinstance(exc, store_errors.TooLarge):
        return TooLarge(exc.message)
    if isinstance(exc, store_errors.KeyNotFound):
        return NotFound(resource, name, group=group)
    return InternalError(f"storage: {exc.code}: {exc.message}")
