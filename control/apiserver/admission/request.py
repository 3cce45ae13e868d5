"""What an admission plugin sees (:class:`AdmissionRequest`, :class:`ClusterView`) and the two
plugin seams; plus the one way plugins build a 403 (:func:`forbidden`).

The registry builds an ``AdmissionRequest`` after authorization and decoding and hands it to
the chain; mutating plugins change ``obj`` in place, validating plugins only raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from control.api.errors import Cause, Forbidden
from control.apiserver.rbac import UserInfo

__all__ = [
    "CONNECT",
    "CREATE",
    "DELETE",
    "UPDATE",
    "AdmissionRequest",
    "ClusterView",
    "MutatingPlugin",
    "QuotaWriter",
    "ValidatingPlugin",
    "forbidden",
    "request_name",
]

CREATE = "CREATE"
UPDATE = "UPDATE"
DELETE = "DELETE"
CONNECT = "CONNECT"


@dataclass
class AdmissionRequest:
    """One request as admission sees it.

    ``resource`` is the plural (``pods``) and ``subresource`` is ``""`` for the object itself;
    ``name`` may be empty on CREATE (then the object's ``metadata.name`` is meant).  ``obj``
    is the decoded new object, owned by the request (mutating plugins edit it in place); it is
    ``None`` for DELETE.  ``old_obj`` is the stored object for UPDATE and DELETE and must not
    be changed (it may be the watch cache's copy)."""

    operation: str
    group: str
    version: str
    resource: str
    subresource: str
    kind: str
    namespace: str
    name: str
    obj: dict[str, Any] | None
    old_obj: dict[str, Any] | None
    user: UserInfo
    dry_run: bool = False


class ClusterView(Protocol):
    """Read access to current objects (the apiserver's watch cache).  Returned objects are
    shared: plugins copy before they keep or change any part of them."""

    def get(self, group: str, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        ...

    def list(self, group: str, resource: str, namespace: str = "") -> list[dict[str, Any]]:
        ...

    async def get_fresh(self, group: str, resource: str, namespace: str,
                        name: str) -> dict[str, Any] | None:
        """Like :meth:`get`, but a miss first waits for the view to catch up with the store
        (a namespace created a moment ago may not have reached the cache yet)."""
        ...


class QuotaWriter(Protocol):
    """Charges quota usage atomically.

    ``update_quota_status`` reads the ResourceQuota ``namespace/name``, calls ``mutate`` with
    a private copy of the whole object and writes the status of the object it returns,
    guarded by the resourceVersion it read; on a conflict it re-reads and calls ``mutate``
    again, and after its retries raises :class:`control.api.errors.Conflict`.  ``mutate`` may
    raise (an ``APIError``) to abort without writing.  A missing quota raises NotFound."""

    async def update_quota_status(
        self, namespace: str, name: str, mutate: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        ...


class MutatingPlugin(Protocol):
    name: str

    async def admit(self, req: AdmissionRequest, view: ClusterView) -> None:
        """Change ``req.obj`` in place, or raise an ``APIError`` to reject the request."""
        ...


class ValidatingPlugin(Protocol):
    name: str

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        """Raise an ``APIError`` to reject the request; never changes anything."""
        ...


def request_name(req: AdmissionRequest) -> str:
    """The name the request is about: ``req.name``, else the new object's ``metadata.name``."""
    if req.name:
        return req.name
    meta = (req.obj or {}).get("metadata") or {}
    return str(meta.get("name") or "")


def forbidden(req: AdmissionRequest, why: str, causes: tuple[Cause, ...] = ()) -> Forbidden:
    """``<resource> "<name>" is forbidden: <why>`` (403) for this request, like admission's
    ``NewForbidden``: the resource without its subresource, and a name that falls back to
    ``metadata.name``, then ``metadata.generateName``, then ``Unknown`` (a create before
    name generation).  ``causes`` go into ``details.causes``."""
    name = request_name(req)
    if not name:
        meta = (req.obj or {}).get("metadata") or {}
        name = str(meta.get("generateName") or "") or "Unknown"
    err = Forbidden(req.resource, name, why, group=req.group)
    if causes:
        err.details["causes"] = [c.to_dict() for c in causes]
    return err
