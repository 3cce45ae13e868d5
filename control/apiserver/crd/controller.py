"""The CRD controllers every apiserver runs (apiextensions' naming, establishing and finalizer
controllers, folded into one level-triggered loop over CRD names).

* **naming**: ``status.acceptedNames`` takes each requested name unless another CRD of the
  group has accepted it already (or a built-in resource of the group owns the plural); the
  ``NamesAccepted`` condition says which name conflicts (``PluralConflict``, ...);
* **establishing**: once the names are accepted the CRD becomes ``Established``, and each
  apiserver's catalog then serves it;
* **finalizer**: a deleted CRD (``deletionTimestamp`` and the
  ``customresourcecleanup.apiextensions.k8s.io`` finalizer, added by DELETE) has its objects
  deleted through the registry (so their own finalizers hold them), then, once none remain,
  loses the finalizer and is gone.

Several apiservers may act on one CRD at once: every write is a compare-and-swap of the
latest object recomputed from it, so the last writer agrees with the first.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from control.api import catalog as builtin
from control.api.errors import APIError, Conflict, NotFound
from control.apiserver.rbac import SYSTEM_MASTERS, UserInfo
from control.apiserver.storage import GroupResource, collection_prefix

from .catalog import CRD_PREFIX, Catalog, established
from .definition import CLEANUP_FINALIZER

if TYPE_CHECKING:
    from control.apiserver.registry import WriteContext
    from control.apiserver.state import APIState

__all__ = ["CRDController", "accepted_status"]

log = logging.getLogger("ketch.apiserver.crd")

_APISERVER = UserInfo(name="system:apiserver", groups=(SYSTEM_MASTERS,))
_GROUP = "apiextensions.k8s.io"
_CLEANUP_WAIT = 60.0
_RESYNC = 5.0


def _set_condition(status: dict[str, Any], cond: dict[str, Any], now: str) -> None:
    conditions = [c for c in status.get("conditions") or () if isinstance(c, dict)]
    for i, c in enumerate(conditions):
        if c.get("type") == cond["type"]:
            if (c.get("status"), c.get("reason"), c.get("message")) != (
                    cond["status"], cond.get("reason"), cond.get("message")):
                keep = c.get("lastTransitionTime") if c.get("status") == cond["status"] else now
                conditions[i] = {**cond, "lastTransitionTime": keep or now}
            status["conditions"] = conditions
            return
    conditions.append({**cond, "lastTransitionTime": now})
    status["conditions"] = conditions


def _taken(others: list[dict[str, Any]], group: str) -> dict[str, set[str]]:
    """Names accepted by the other CRDs of ``group`` (and built-in plurals of the group)."""
    taken: dict[str, set[str]] = {"plural": set(), "singular": set(), "shortNames": set(),
                                  "kind": set(), "listKind": set()}
    for rd in builtin.RESOURCES:
        if rd.group == group:
            taken["plural"].add(rd.resource)
    for crd in others:
        if (crd.get("spec") or {}).get("group") != group:
            continue
        names = (crd.get("status") or {}).get("acceptedNames") or {}
        for k in ("plural", "singular", "kind", "listKind"):
            if names.get(k):
                taken[k].add(names[k])
        taken["shortNames"].update(names.get("shortNames") or ())
    return taken


def accepted_status(crd: dict[str, Any], others: list[dict[str, Any]], now: str
                    ) -> dict[str, Any]:
    """The status the naming and establishing controllers give ``crd`` (a new dict)."""
    spec, status = crd.get("spec") or {}, copy.deepcopy(crd.get("status") or {})
    requested = spec.get("names") or {}
    accepted = dict(status.get("acceptedNames") or {})
    taken = _taken(others, str(spec.get("group") or ""))
    problem: tuple[str, str] | None = None
    for name, reason in (("plural", "PluralConflict"), ("singular", "SingularConflict"),
                         ("shortNames", "ShortNamesConflict"), ("kind", "KindConflict"),
                         ("listKind", "ListKindConflict")):
        want, have = requested.get(name), accepted.get(name)
        values = list(want or ()) if name == "shortNames" else [want] if want else []
        clash = next((v for v in values if v in taken[name]), None)
        if clash is not None and want != have:
            problem = problem or (reason, f'"{clash}" is already in use')
            continue
        if want:
            accepted[name] = want
        else:
            accepted.pop(name, None)
    accepted.setdefault("plural", "")
    accepted.setdefault("kind", "")
    for extra in ("categories",):
        if requested.get(extra):
            accepted[extra] = list(requested[extra])
    status["acceptedNames"] = accepted
    if problem is None:
        names_cond = {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                      "message": "no conflicts found"}
    else:
        names_cond = {"type": "NamesAccepted", "status": "False", "reason": problem[0],
                      "message": problem[1]}
    _set_condition(status, names_cond, now)
    if established(crd):
        pass
    elif problem is None:
        _set_condition(status, {"type": "Established", "status": "True",
                                "reason": "InitialNamesAccepted",
                                "message": "the initial names have been accepted"}, now)
    else:
        _set_condition(status, {"type": "Established", "status": "False",
                                "reason": "NotAccepted", "message": "not all names are accepted"},
                       now)
    return status


class CRDController:
    """One task per apiserver: reconciles each CRD name the catalog reports changed."""

    def __init__(self, api: APIState, catalog: Catalog) -> None:
        self.api = api
        self.catalog = catalog
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._cleanup_started: dict[str, float] = {}
        catalog.listeners.append(self.enqueue)

    def enqueue(self, name: str) -> None:
        if name not in self._queued:
            self._queued.add(name)
            self.queue.put_nowait(name)

    async def run(self) -> None:
        for _, crd in self.api.cache.snapshot(CRD_PREFIX)[0]:
            self.enqueue(str(crd["metadata"]["name"]))
        while True:
            try:
                async with asyncio.timeout(_RESYNC):
                    name = await self.queue.get()
            except TimeoutError:
                # The cache may have relisted (its listeners see no events then): catch up.
                self.catalog.load(o for _, o in self.api.cache.snapshot(CRD_PREFIX)[0])
                continue
            self._queued.discard(name)
            try:
                await self.reconcile(name)
            except (Conflict, NotFound):
                continue  # changed or gone meanwhile: its next event brings it back
            except Exception:  # keep serving the others; this one is retried shortly
                log.exception("reconciling CustomResourceDefinition %s", name)
                asyncio.get_running_loop().call_later(1.0, self.enqueue, name)

    def _ctx(self, name: str, subresource: str = "status") -> WriteContext:
        from control.apiserver.registry import WriteContext

        rd = builtin.lookup(_GROUP, "v1", "customresourcedefinitions")
        assert rd is not None
        return WriteContext(user=_APISERVER, rd=rd, name=name, subresource=subresource,
                            field_manager="kube-apiserver")

    async def reconcile(self, name: str) -> None:
        crd = self.api.cache.get(CRD_PREFIX + name.encode())
        if crd is None:
            return
        meta = crd.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            if CLEANUP_FINALIZER in (meta.get("finalizers") or ()):
                await self._clean_up(name, crd)
            return
        now = self.api.inputs.timestamp()

        def named(old: dict[str, Any]) -> dict[str, Any]:
            cur = copy.deepcopy(old)  # the registry compares it with the old object
            others = [o for _, o in self.api.cache.snapshot(CRD_PREFIX)[0]
                      if o["metadata"]["name"] != name]
            cur["status"] = accepted_status(cur, others, now)
            return cur

        if accepted_status(crd, [o for _, o in self.api.cache.snapshot(CRD_PREFIX)[0]
                                 if o["metadata"]["name"] != name], now) != crd.get("status"):
            await self.api.registry.mutate(self._ctx(name), named)

    async def _clean_up(self, name: str, crd: dict[str, Any]) -> None:
        now = self.api.inputs.timestamp()
        spec = crd.get("spec") or {}
        plural = ((crd.get("status") or {}).get("acceptedNames") or {}).get("plural") \
            or (spec.get("names") or {}).get("plural", "")
        gr = GroupResource(str(spec.get("group", "")), str(plural))
        if builtin.lookup(gr.group, "v1", gr.resource) is not None or not plural:
            cond = {"type": "Terminating", "status": "False",
                    "reason": "OverlappingBuiltInResource",
                    "message": "instances overlap with built-in resources in storage"}
        elif not any(c.get("type") == "Established" and c.get("status") == "True"
                     for c in (crd.get("status") or {}).get("conditions") or ()):
            cond = {"type": "Terminating", "status": "False", "reason": "NeverEstablished",
                    "message": "resource was never established"}
        else:
            await self._write_condition(name, {
                "type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                "message": "CustomResource deletion is in progress"}, now)
            cond = await self._delete_instances(name, gr)
            if cond["status"] == "True":  # not done: say why, look again soon
                await self._write_condition(name, cond, now)
                asyncio.get_running_loop().call_later(0.5, self.enqueue, name)
                return

        def finish(old: dict[str, Any]) -> dict[str, Any]:
            cur = copy.deepcopy(old)
            status = cur.setdefault("status", {})
            _set_condition(status, cond, now)
            cur["metadata"]["finalizers"] = [f for f in cur["metadata"].get("finalizers") or ()
                                             if f != CLEANUP_FINALIZER]
            return cur

        await self.api.registry.mutate(self._ctx(name), finish)

    async def _write_condition(self, name: str, cond: dict[str, Any], now: str) -> None:
        cur = self.api.cache.get(CRD_PREFIX + name.encode()) or {}
        for c in (cur.get("status") or {}).get("conditions") or ():
            if c.get("type") == cond["type"] and all(c.get(k) == v for k, v in cond.items()):
                return  # already says so

        def change(old: dict[str, Any]) -> dict[str, Any]:
            cur = copy.deepcopy(old)
            _set_condition(cur.setdefault("status", {}), cond, now)
            return cur

        await self.api.registry.mutate(self._ctx(name), change)

    async def _delete_instances(self, name: str, gr: GroupResource) -> dict[str, Any]:
        from control.apiserver.registry import WriteContext

        versions = self.catalog.served_versions(name)
        prefix = collection_prefix(gr)
        if versions:
            rd = versions[0]
            failures = []
            for _, obj in self.api.cache.snapshot(prefix)[0]:
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                ctx = WriteContext(user=_APISERVER, rd=rd, namespace=meta.get("namespace", ""),
                                   name=meta["name"], field_manager="kube-apiserver")
                try:
                    await self.api.registry.delete(ctx, {})
                except NotFound:
                    continue
                except APIError as e:
                    failures.append(str(e))
            if failures:
                return {"type": "Terminating", "status": "True",
                        "reason": "InstanceDeletionFailed",
                        "message": f"could not issue all deletes: {'; '.join(failures[:3])}"}
        if self.api.cache.snapshot(prefix)[0]:
            # Deletions under way (or held by finalizers): look again shortly; after a minute
            # say so on the CRD, as kube's finalizer does when its poll times out.
            loop = asyncio.get_running_loop()
            started = self._cleanup_started.setdefault(name, loop.time())
            if loop.time() - started > _CLEANUP_WAIT:
                return {"type": "Terminating", "status": "True",
                        "reason": "InstanceDeletionCheck",
                        "message": "could not confirm zero CustomResources remaining: timed out "
                                   "waiting for the condition"}
            return {"type": "Terminating", "status": "True",
                    "reason": "InstanceDeletionInProgress",
                    "message": "CustomResource deletion is in progress"}
        self._cleanup_started.pop(name, None)
        return {"type": "Terminating", "status": "False", "reason": "InstanceDeletionCompleted",
                "message": "removed all instances"}
