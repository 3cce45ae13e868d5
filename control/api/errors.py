"""The apiserver's error tree: what a request fails with, and its Kubernetes ``Status`` form.

Handlers and the registry raise :class:`APIError` subclasses; one middleware turns them into
``Status`` JSON with :meth:`APIError.to_status`.  Store errors become API errors in exactly one
place, ``control.apiserver.store_errors``.  Reasons, codes and message
formats are those of apimachinery ``pkg/api/errors`` (``NewNotFound``, ``NewConflict``, ...), so
kubectl and the client libraries print and classify them as they do against kube-apiserver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APIError",
    "AlreadyExists",
    "BadRequest",
    "Cause",
    "Conflict",
    "Expired",
    "Forbidden",
    "Gone",
    "InternalError",
    "Invalid",
    "MethodNotAllowed",
    "NotFound",
    "ServiceUnavailable",
    "Timeout",
    "TooLarge",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "from_status",
    "qualified",
]

MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
LIST_EXPIRED = "The resourceVersion for the provided list is too old."
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)
CONTINUE_INCONSISTENT = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter, or use the continue token in "
    "this response to retrieve the remainder of the results. Continuing with the provided "
    "token results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)


def qualified(resource: str, group: str = "") -> str:
    """``GroupResource.String()``: ``pods``, ``deployments.apps``."""
    return f"{resource}.{group}" if group else resource


def _q(s: str) -> str:
    """Go's ``%q`` for the plain names Kubernetes allows (escapes quotes and backslashes)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Cause:
    """One ``StatusCause``: ``reason`` is the cause type (``FieldValueRequired``, ...),
    ``message`` the error body (``Required value``), ``field`` the path (``spec.replicas``)."""

    reason: str = ""
    message: str = ""
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("reason", self.reason), ("message", self.message),
                                  ("field", self.field)) if v}


class APIError(Exception):
    """Base of every API error: an HTTP ``code``, a ``reason`` (``StatusReason``), a
    ``message`` and optional ``details`` (``name``, ``group``, ``kind``, ``uid``, ``causes``,
    ``retryAfterSeconds``; empty values are left out of the Status like Go's omitempty).
    ``list_meta`` goes into the Status ``metadata`` (an Expired continue carries a fresh
    ``continue`` token there)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        list_meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        self.list_meta = dict(list_meta or {})

    def to_status(self) -> dict[str, Any]:
        """The ``Status`` object (``status: Failure``) a client receives for this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.list_meta),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        details = {k: v for k, v in self.details.items() if v not in ("", None, [], 0)}
        if details:
            status["details"] = details
        status["code"] = self.code
        return status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.reason!r}, {self.message!r})"


def _details(resource: str, group: str, name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "group": group, "kind": resource, **more}


class NotFound(APIError):
    """``pods "x" not found`` (404)."""

    def __init__(self, resource: str, name: str, *, group: str = "") -> None:
        super().__init__(404, "NotFound", f"{qualified(resource, group)} {_q(name)} not found",
                         _details(resource, group, name))


class AlreadyExists(APIError):
    """``deployments.apps "web" already exists`` (409)."""

    def __init__(self, resource: str, name: str, *, group: str = "") -> None:
        super().__init__(409, "AlreadyExists",
                         f"{qualified(resource, group)} {_q(name)} already exists",
                         _details(resource, group, name))


class Conflict(APIError):
    """``Operation cannot be fulfilled on configmaps "x": <why>`` (409); ``why`` defaults to
    the stale-resourceVersion text, preconditions pass their own."""

    def __init__(self, resource: str, name: str, *, group: str = "", why: str = MODIFIED) -> None:
        super().__init__(
            409, "Conflict",
            f"Operation cannot be fulfilled on {qualified(resource, group)} {_q(name)}: {why}",
            _details(resource, group, name))


class Invalid(APIError):
    """``Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: ...`` (422).

    Named by *kind* (not resource), one cause per field error; the message joins
    ``field: message`` like ``field.ErrorList.ToAggregate`` (one error bare, several in
    ``[a, b]``, duplicates dropped)."""

    def __init__(self, kind: str, name: str, causes: Sequence[Cause], *, group: str = "") -> None:
        msgs: list[str] = []
        for c in causes:
            text = f"{c.field}: {c.message}" if c.field else c.message
            if text not in msgs:
                msgs.append(text)
        head = f"{qualified(kind, group)} {_q(name)} is invalid"
        if not msgs:
            message = head
        elif len(msgs) == 1:
            message = f"{head}: {msgs[0]}"
        else:
            message = f"{head}: [{', '.join(msgs)}]"
        super().__init__(422, "Invalid", message,
                         _details(kind, group, name, causes=[c.to_dict() for c in causes]))
        self.causes = list(causes)


class BadRequest(APIError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "BadRequest", message)


class Unauthorized(APIError):
    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(401, "Unauthorized", message)


class Forbidden(APIError):
    """``pods "x" is forbidden: <why>``, ``pods is forbidden: <why>`` without a name,
    ``forbidden: <why>`` without a resource (403)."""

    def __init__(self, resource: str, name: str, why: str, *, group: str = "") -> None:
        if not resource and not group:
            message = f"forbidden: {why}"
        elif not name:
            message = f"{qualified(resource, group)} is forbidden: {why}"
        else:
            message = f"{qualified(resource, group)} {_q(name)} is forbidden: {why}"
        super().__init__(403, "Forbidden", message, _details(resource, group, name))


class MethodNotAllowed(APIError):
    """``POST is not supported on resources of kind "pods"`` (405)."""

    def __init__(self, resource: str, action: str, *, group: str = "") -> None:
        super().__init__(
            405, "MethodNotAllowed",
            f"{action} is not supported on resources of kind {_q(qualified(resource, group))}",
            {"group": group, "kind": resource})


class Gone(APIError):
    def __init__(self, message: str) -> None:
        super().__init__(410, "Gone", message)


class Expired(APIError):
    """410 reason ``Expired``: a watch, list or continue token older than the kept history.
    ``continue_token`` (for an inconsistent continuation) goes into ``metadata.continue``."""

    def __init__(self, message: str, *, continue_token: str | None = None) -> None:
        super().__init__(410, "Expired", message,
                         list_meta={"continue": continue_token} if continue_token else None)


class TooLarge(APIError):
    def __init__(self, message: str) -> None:
        super().__init__(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


class UnsupportedMediaType(APIError):
    def __init__(self, accepted: Sequence[str]) -> None:
        super().__init__(
            415, "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted))


class TooManyRequests(APIError):
    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(429, "TooManyRequests", message,
                         {"retryAfterSeconds": retry_after_seconds})


class InternalError(APIError):
    """``Internal error occurred: <cause>`` (500): our bug or a broken invariant."""

    def __init__(self, cause: str | BaseException) -> None:
        text = str(cause)
        super().__init__(500, "InternalError", f"Internal error occurred: {text}",
                         {"causes": [{"message": text}]})


class ServiceUnavailable(APIError):
    def __init__(self, message: str) -> None:
        super().__init__(503, "ServiceUnavailable", message)


class Timeout(APIError):
    """``Timeout: <message>`` (504), with ``retryAfterSeconds`` when given."""

    def __init__(self, message: str, retry_after_seconds: int = 0,
                 causes: Sequence[Cause] = ()) -> None:
        super().__init__(504, "Timeout", f"Timeout: {message}",
                         {"retryAfterSeconds": retry_after_seconds,
                          "causes": [c.to_dict() for c in causes]})


# The reason → class table the client uses to rebuild an error from a Status it received.
_BY_REASON: dict[str, type[APIError]] = {
    "NotFound": NotFound, "AlreadyExists": AlreadyExists, "Conflict": Conflict,
    "Invalid": Invalid, "BadRequest": BadRequest, "Unauthorized": Unauthorized,
    "Forbidden": Forbidden, "MethodNotAllowed": MethodNotAllowed, "Gone": Gone,
    "Expired": Expired, "RequestEntityTooLarge": TooLarge,
    "UnsupportedMediaType": UnsupportedMediaType, "TooManyRequests": TooManyRequests,
    "InternalError": InternalError, "ServiceUnavailable": ServiceUnavailable,
    "Timeout": Timeout, "ServerTimeout": Timeout,
}
_BY_CODE: dict[int, type[APIError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    409: Conflict, 410: Gone, 413: TooLarge, 415: UnsupportedMediaType, 422: Invalid,
    429: TooManyRequests, 500: InternalError, 503: ServiceUnavailable, 504: Timeout,
}


def from_status(code: int, status: Any) -> APIError:
    """The error a ``Status`` answer (or any non-2xx answer) stands for, as the same class the
    apiserver raised: the one translation of HTTP answers into errors, for every client.

    The class comes from the Status ``reason`` (``NotFound``, ``Conflict``, ...), else from
    the HTTP ``code``; the message, code, reason and details are the server's own.  A body
    that is not a Status (a proxy's HTML page, text) keeps its first 200 characters as the
    message."""
    if isinstance(status, dict):
        reason = str(status.get("reason") or "")
        message = str(status.get("message") or "")
        raw_details, raw_meta = status.get("details"), status.get("metadata")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        list_meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        code = int(status.get("code") or code)
    else:
        reason, details, list_meta = "", {}, {}
        message = (status.decode(errors="replace") if isinstance(status, bytes)
                   else str(status or ""))[:200]
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or (
        InternalError if code >= 500 else BadRequest)
    err = cls.__new__(cls)
    APIError.__init__(err, code, reason or cls.__name__, message or f"HTTP {code}",
                      details, list_meta=list_meta)
    if isinstance(err, Invalid):
        err.causes = [Cause(str(c.get("reason", "")), str(c.get("message", "")),
                            str(c.get("field", ""))) for c in details.get("causes", [])
                      if isinstance(c, dict)]
    return err
