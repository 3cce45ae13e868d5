"""The registry: create, update, patch and delete of stored API objects, in apiserver's order.

For every write: system metadata (:mod:`objectmeta`) → the resource's strategy prepares it →
mutating admission → strategy validation → validating admission → managedFields → storage,
where updates are compare-and-swap on resourceVersion (:meth:`Storage.guaranteed_update`), so
a write based on a stale read fails with 409 and nothing is written.  Deletion honours
finalizers, grace periods for bound pods and ``propagationPolicy`` (Foreground/Orphan add the
garbage collector's finalizers).  Reads live in :mod:`control.apiserver.reads`.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from control.api.catalog import ResourceDef
from control.api.errors import BadRequest, Cause, Conflict, Invalid, NotFound
from control.apiserver.admission import AdmissionChain, AdmissionRequest, ClusterView
from control.apiserver.patching import PatchSchema, schema_for
from control.apiserver.patching.managed import update_managed_fields
from control.apiserver.rbac import UserInfo
from control.apiserver.storage import GroupResource, Storage, check_preconditions
from control.apiserver.strategies import Strategy, strategy_for

from .allocation import Allocator
from .crd.resource import CustomResourceDef, present, to_storage
from .objectmeta import Inputs, carry_over, now_rfc3339, prepare_create_meta

__all__ = ["Registry", "WriteContext", "patch_schema_of", "strategy_of"]

def strategy_of(rd: ResourceDef) -> Strategy:
    """The strategy of a resource: its own for a custom resource, else the built-in one."""
    if isinstance(rd, CustomResourceDef) and rd.strategy is not None:
        return rd.strategy
    return strategy_for(rd.group, rd.resource)


def patch_schema_of(rd: ResourceDef) -> PatchSchema:
    """Merge keys for apply and managedFields: the CRD's list types, else the kind's."""
    if isinstance(rd, CustomResourceDef) and rd.patch_schema is not None:
        return rd.patch_schema
    return schema_for(rd.kind)


MutateFn = Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]


@dataclass
class WriteContext:
    """Who writes what: the user, the addressed object, and the write's options."""

    user: UserInfo
    rd: ResourceDef
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    field_manager: str = ""
    dry_run: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gr(self) -> GroupResource:
        return GroupResource(self.rd.group, self.rd.resource)


class Registry:
    """Writes of every stored resource, parametrised by the catalog and the strategies."""

    def __init__(self, storage: Storage, admission: AdmissionChain, view: ClusterView,
                 *, inputs: Inputs | None = None, allocator: Allocator | None = None) -> None:
        self.storage = storage
        self.admission = admission
        self.view = view
        self.inputs = inputs or Inputs()
        self.allocator = allocator

    # --- helpers -------------------------------------------------------------------------

    def _request(self, ctx: WriteContext, op: str, obj: dict[str, Any] | None,
                 old: dict[str, Any] | None) -> AdmissionRequest:
        name = ctx.name or ((obj or {}).get("metadata") or {}).get("name", "")
        return AdmissionRequest(operation=op, group=ctx.rd.group, version=ctx.rd.version,
                                resource=ctx.rd.resource, subresource=ctx.subresource,
                                kind=ctx.rd.kind, namespace=ctx.namespace, name=name,
                                obj=obj, old_obj=old, user=ctx.user, dry_run=ctx.dry_run)

    def _invalid(self, ctx: WriteContext, obj: dict[str, Any], causes: list[Cause]) -> None:
        if causes:
            name = (obj.get("metadata") or {}).get("name", "")
            raise Invalid(ctx.rd.kind, name, causes, group=ctx.rd.group)

    def _managed(self, ctx: WriteContext, old: dict[str, Any] | None,
                 new: dict[str, Any]) -> None:
        if ctx.extra.get("apply"):
            return  # server-side apply recorded its own entry
        update_managed_fields(old, new, manager=ctx.field_manager or "unknown",
                              operation="Update", now=self.inputs.timestamp(),
                              schema=patch_schema_of(ctx.rd), subresource=ctx.subresource,
                              ignore_status=ctx.rd.subresource("status") is not None)

    def _defaults(self, ctx: WriteContext, obj: dict[str, Any]) -> None:
        obj.setdefault("apiVersion", ctx.rd.api_version)
        obj.setdefault("kind", ctx.rd.kind)
        if obj["apiVersion"] != ctx.rd.api_version or obj["kind"] != ctx.rd.kind:
            raise BadRequest(
                f"the API version in the data ({obj['apiVersion']}) does not match the "
                f"expected API version ({ctx.rd.api_version})"
                if obj["apiVersion"] != ctx.rd.api_version else
                f"the kind in the data ({obj['kind']}) does not match the expected kind "
                f"({ctx.rd.kind})")
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if ctx.rd.namespaced:
            ns = meta.get("namespace") or ctx.namespace
            if ns != ctx.namespace:
                raise BadRequest("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    # --- create --------------------------------------------------------------------------

    async def create(self, ctx: WriteContext, obj: dict[str, Any]) -> dict[str, Any]:
        """201's object: stored (or, with dry_run, what would be stored)."""
        self._defaults(ctx, obj)
        applied = obj["metadata"].get("managedFields") if ctx.extra.get("apply") else None
        meta = prepare_create_meta(obj, self.inputs)
        if applied:
            meta["managedFields"] = applied
        if not meta.get("name"):
            raise Invalid(ctx.rd.kind, "", [Cause(
                "FieldValueRequired", "Required value: name or generateName is required",
                "metadata.name")], group=ctx.rd.group)
        ctx.name = meta["name"]
        strategy = strategy_of(ctx.rd)
        strategy.prepare_for_create(obj)
        hook = getattr(strategy, "apply_uid", None)
        if hook is not None and getattr(strategy, "needs_uid_selector", False):
            hook(obj, meta["uid"])
        req = self._request(ctx, "CREATE", obj, None)
        await self.admission.admit(req, self.view)
        self._invalid(ctx, obj, strategy.validate(obj))
        await self.admission.validate(req, self.view)
        self._managed(ctx, None, obj)
        if ctx.dry_run:
            return obj
        to_storage(ctx.rd, obj)
        made = []
        if self.allocator is not None and getattr(strategy, "needs_cluster_ip", False):
            made = await self.allocator.allocate(strategy, obj)
        try:
            return await self.storage.create(ctx.gr, ctx.namespace, ctx.name, obj)
        except BaseException:
            if made and self.allocator is not None:
                await self.allocator.undo(made)
            raise

    # --- update / patch ------------------------------------------------------------------

    async def _updated(self, ctx: WriteContext, old: dict[str, Any],
                       new: dict[str, Any]) -> dict[str, Any]:
        """Everything between "the client's new object" and "what to store" for an update
        of the main resource or its status."""
        self._defaults(ctx, new)
        new_meta = new["metadata"]
        if new_meta.get("name", ctx.name) != ctx.name:
            raise BadRequest(f"the name of the object ({new_meta.get('name')}) does not match "
                             f"the name on the URL ({ctx.name})")
        new_meta["name"] = ctx.name
        # The body's uid is a precondition, as in kube.
        check_preconditions(ctx.gr, ctx.name, old, None, new_meta.get("uid") or None)
        carry_over(new, old)
        strategy = strategy_of(ctx.rd)
        if ctx.subresource == "status":
            strategy.prepare_for_status_update(new, old)
        else:
            strategy.prepare_for_update(new, old)
        req = self._request(ctx, "UPDATE", new, old)
        await self.admission.admit(req, self.view)
        self._invalid(ctx, new, strategy.validate_update(new, old))
        await self.admission.validate(req, self.view)
        self._managed(ctx, old, new)
        to_storage(ctx.rd, new)
        return new

    async def update(self, ctx: WriteContext, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT: replace the object; CAS on the body's resourceVersion if it has one."""
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        expected = obj["metadata"].get("resourceVersion") or None
        return await self.mutate(ctx, lambda _old: copy.deepcopy(obj), expected_rv=expected)

    async def mutate(self, ctx: WriteContext, fn: MutateFn, *,
                     expected_rv: str | None = None) -> dict[str, Any]:
        """Read-modify-write of the stored object: ``fn`` turns the current object into the
        client's new one, which then goes through the update pipeline (:meth:`_updated`);
        an object whose deletion is pending and whose last finalizer goes is deleted."""
        async def step(stored: dict[str, Any]) -> dict[str, Any]:
            old = present(ctx.rd, stored)  # a custom object in the request's version
            out = fn(old)
            new = await out if isinstance(out, Awaitable) else out
            return await self._updated(ctx, old, new)

        if ctx.dry_run:
            old = await self.storage.get(ctx.gr, ctx.namespace, ctx.name)
            if expected_rv and old["metadata"]["resourceVersion"] != expected_rv:
                raise Conflict(ctx.rd.resource, ctx.name, group=ctx.rd.group)
            return await step(copy.deepcopy(old))
        new = await self.storage.guaranteed_update(ctx.gr, ctx.namespace, ctx.name, step,
                                                   expected_resource_version=expected_rv)
        if _delete_during_update(ctx.rd, new):
            return await self._remove(ctx, new)
        return new

    # --- delete --------------------------------------------------------------------------

    async def _released(self, ctx: WriteContext, gone: dict[str, Any]) -> None:
        strategy = strategy_of(ctx.rd)
        if self.allocator is not None and getattr(strategy, "needs_cluster_ip", False):
            await self.allocator.release(gone)

    async def _remove(self, ctx: WriteContext, cur: dict[str, Any]) -> dict[str, Any]:
        try:
            gone = await self.storage.delete(
                ctx.gr, ctx.namespace, ctx.name,
                expected_resource_version=cur["metadata"]["resourceVersion"])
        except NotFound:
            return cur
        await self._released(ctx, gone)
        return gone

    async def delete(self, ctx: WriteContext, options: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """DELETE with DeleteOptions; ``(object, gone)``: gone is False while finalizers or a
        grace period keep the object (it then carries deletionTimestamp)."""
        pre = options.get("preconditions") or {}
        policy = options.get("propagationPolicy") or ""
        if policy not in ("", "Foreground", "Background", "Orphan"):
            raise BadRequest(f"propagationPolicy: Unsupported value: {policy!r}: supported "
                             'values: "Foreground", "Background", "Orphan"')
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        grace = options.get("gracePeriodSeconds")
        cur = await self.storage.get(ctx.gr, ctx.namespace, ctx.name)
        req = self._request(ctx, "DELETE", None, cur)
        await self.admission.validate(req, self.view)
        if ctx.dry_run:
            return cur, True
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        strategy = strategy_of(ctx.rd)
        own = getattr(strategy, "deletion_finalizer", None)  # a CRD's cleanup
        graceful = self._grace(ctx, cur, grace)
        if not _held(ctx.rd, cur) and not finalizer and not own and not graceful:
            obj = await self.storage.delete(ctx.gr, ctx.namespace, ctx.name,
                                            expected_resource_version=pre.get("resourceVersion"),
                                            expected_uid=pre.get("uid"))
            await self._released(ctx, obj)
            return obj, True
        stamp = self.inputs.now()

        def mark(obj: dict[str, Any]) -> dict[str, Any]:
            check_preconditions(ctx.gr, ctx.name, obj, None, pre.get("uid") or None)
            meta = obj["metadata"]
            for f in (finalizer, own if not meta.get("deletionTimestamp") else None):
                if f and f not in meta.setdefault("finalizers", []):
                    meta["finalizers"].append(f)
            if not meta.get("deletionTimestamp") and hasattr(strategy, "mark_deleting"):
                strategy.mark_deleting(obj, now_rfc3339(stamp))
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_rfc3339(stamp + dt.timedelta(seconds=graceful))
                meta["deletionGracePeriodSeconds"] = graceful
            elif graceful < meta.get("deletionGracePeriodSeconds", graceful):
                meta["deletionGracePeriodSeconds"] = graceful
            if _is_namespace(ctx.rd):
                obj.setdefault("status", {})["phase"] = "Terminating"
            return obj

        obj = await self.storage.guaranteed_update(
            ctx.gr, ctx.namespace, ctx.name, mark,
            expected_resource_version=pre.get("resourceVersion"))
        if not _held(ctx.rd, obj) and not graceful:
            return await self._remove(ctx, obj), True
        return obj, False

    def _grace(self, ctx: WriteContext, cur: dict[str, Any], grace: Any) -> int:
        """Seconds a deletion waits for a node agent: only pods bound to a node and not yet
        finished wait (as kube's pod strategy does); everything else goes at once."""
        if ctx.rd.resource != "pods" or ctx.rd.group:
            return 0
        spec, status = cur.get("spec") or {}, cur.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if not isinstance(grace, int) or grace < 0:
            raise BadRequest("gracePeriodSeconds must be a non-negative integer")
        return grace


def _is_namespace(rd: ResourceDef) -> bool:
    return rd.group == "" and rd.resource == "namespaces"


def _delete_during_update(rd: ResourceDef, obj: dict[str, Any]) -> bool:
    """An update removed the last finalizer of an object whose deletion has no grace period
    left to wait for (kube's ``ShouldDeleteDuringUpdate``): it goes now.  A pod deleted
    gracefully keeps waiting for its node agent's delete with grace 0, whatever else writes
    it meanwhile — removing it on, say, a status write from the node lifecycle controller let
    a StatefulSet start a second ``db-0`` while the first still ran on a partitioned node."""
    meta = obj.get("metadata") or {}
    if not meta.get("deletionTimestamp") or _held(rd, obj):
        return False
    return not meta.get("deletionGracePeriodSeconds")


def _held(rd: ResourceDef, obj: dict[str, Any]) -> bool:
    """Finalizers keep the object after its deletion: ``metadata.finalizers``, and for a
    namespace also ``spec.finalizers`` (the namespace controller's)."""
    if obj.get("metadata", {}).get("finalizers"):
        return True
    return _is_namespace(rd) and bool((obj.get("spec") or {}).get("finalizers"))
