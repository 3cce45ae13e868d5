"""The garbage collector: deletes objects whose owners are gone, and completes the cascading
deletions the apiserver starts (kubernetes ``pkg/controller/garbagecollector``).

The apiserver's DELETE only marks: ``propagationPolicy: Foreground`` adds the
``foregroundDeletion`` finalizer and ``Orphan`` the ``orphan`` finalizer to an object it
stamps with ``deletionTimestamp``; ``Background`` (the default) deletes the object at once.
The collector does the rest, for every resource in the catalog (one shared informer each,
events excepted), through a :class:`~.gcgraph.Graph` of owner references:

* **background**: when an owner goes, each of its dependents is looked at; a dependent none
  of whose owners exists any more is deleted (with the propagation its own finalizers ask
  for, else background), one that keeps another owner just loses the dangling reference;
* **foreground**: an owner with ``foregroundDeletion`` has its dependents deleted (those that
  have dependents of their own in the foreground too); it waits while any dependent whose
  reference carries ``blockOwnerDeletion`` exists, then the finalizer is removed and the
  apiserver deletes it;
* **orphan**: an owner with ``orphan`` has its reference removed from every dependent, then
  the finalizer.

Never on a stale cache: before deleting anything the collector reads the dependent itself
and each of its owners from the apiserver (``attemptToDeleteItem``, ``isDangling``): an owner
is absent only if a live GET says NotFound or shows another uid, and such verified absences
are remembered (by uid, so never wrongly) in a small LRU.  Before removing a
``foregroundDeletion`` or ``orphan`` finalizer it waits until every informer has caught up
with the owner's latest resourceVersion (resourceVersions are store revisions, one sequence
for all resources), so no dependent created before the deletion is missed.

Work items are ``delete:<uid>`` (look at one object: attemptToDelete) and ``orphan:<uid>``
(release one owner's dependents: attemptToOrphan).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from control.api.catalog import RESOURCES, lookup_kind
from control.api.errors import APIError, Conflict, NotFound
from control.client import WARNING, Informer, Resource

from .base import Controller, ControllerContext
from .gcgraph import FOREGROUND, ORPHAN, Graph, Node, OwnerRef, matches, owner_refs

__all__ = ["GarbageCollector", "UnknownOwnerKind", "monitored_resources"]

log = logging.getLogger("ketch.controllers.garbagecollector")

Obj = dict[str, Any]
ABSENT_OWNER_CACHE = 500  # kube's absentOwnerCache size
CATCH_UP_TIMEOUT = 30.0
# Events are never owners nor owned in practice, and the most numerous kind (kube ignores them).
_IGNORED = {("", "events"), ("events.k8s.io", "events")}


def monitored_resources() -> list[Resource]:
    """Every stored resource that can be listed, watched and deleted, events excepted."""
    return [Resource.of(rd) for rd in RESOURCES
            if not rd.virtual and (rd.group, rd.resource) not in _IGNORED
            and {"list", "watch", "delete"} <= set(rd.verbs)]


class UnknownOwnerKind(APIError):
    """An owner reference names a kind the apiserver does not serve (retried: it may be a
    kind not yet known)."""

    def __init__(self, ref: OwnerRef) -> None:
        super().__init__(404, "NotFound",
                         f"unable to resolve owner kind {ref.kind!r} in {ref.api_version!r}")


class GarbageCollector(Controller):
    name = "garbagecollector"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.workers = ctx.settings.concurrency.get(self.name, 20)  # --concurrent-gc-syncs
        self.graph = Graph()
        self.absent: collections.OrderedDict[tuple[str, ...], None] = collections.OrderedDict()
        self.informers: list[Informer] = []
        for res in monitored_resources():
            inf = ctx.informer(res)
            self.informers.append(inf)
            inf.add_handler(on_add=lambda o, r=res: self._observe(r, o),
                            on_update=lambda old, new, r=res: self._updated(r, old, new),
                            on_delete=self._deleted)

    # --- the graph builder (informer handlers: update the graph, enqueue) -------------------

    def _updated(self, res: Resource, old: Obj, new: Obj) -> None:
        if old is not new:  # not a resync
            self._observe(res, new)

    def _observe(self, res: Resource, obj: Obj) -> None:
        change = self.graph.put(res, obj)
        if change is None:
            return
        node = change.node
        # an owner waiting for its dependents may be unblocked now
        for gone in [*(r for r in change.removed if r.block_owner_deletion), *change.unblocked]:
            self._poke_waiting_owner(gone.uid)
        if any(self._suspect(node, ref) for ref in change.added):
            self.enqueue(f"delete:{node.uid}")
        if change.before is None:  # first seen: dependents that named it wrongly
            for dep in self.graph.dependents(node.uid):
                named = dep.ref_to(node.uid)
                if named is not None and self._suspect(dep, named):
                    self.enqueue(f"delete:{dep.uid}")
        if change.starts_orphaning:
            self.enqueue(f"orphan:{node.uid}")
        elif change.starts_deleting_dependents:
            for dep in self.graph.dependents(node.uid):
                self.enqueue(f"delete:{dep.uid}")
            self.enqueue(f"delete:{node.uid}")

    def _deleted(self, obj: Obj) -> None:
        node = self.graph.remove(obj)
        if node is None:
            return
        dependents = self.graph.dependents(node.uid)
        if dependents:
            self._remember_absent(node.res.group, node.res.kind, node.name, node.uid,
                                  node.namespace)
        for dep in dependents:
            self.enqueue(f"delete:{dep.uid}")
        for ref in node.owners:
            self._poke_waiting_owner(ref.uid)  # one blocker fewer

    def _poke_waiting_owner(self, uid: str) -> None:
        owner = self.graph.get(uid)
        if owner is not None and owner.deleting_dependents:
            self.enqueue(f"delete:{uid}")

    def _suspect(self, dep: Node, ref: OwnerRef) -> bool:
        """Whether ``dep``'s reference needs verifying: its owner is unobserved, being deleted
        in the foreground, or observed under other coordinates or in another namespace."""
        owner = self.graph.get(ref.uid)
        if owner is None or owner.deleting_dependents or not matches(ref, owner):
            return True
        return bool(owner.namespace) and owner.namespace != dep.namespace

    def start_term(self) -> None:
        """A new term: look again at everything a previous leader may have left half done."""
        super().start_term()
        for node in self.graph:
            if node.orphaning:
                self.enqueue(f"orphan:{node.uid}")
            elif node.deleting_dependents:
                self.enqueue(f"delete:{node.uid}")
            if any(self._suspect(node, ref) for ref in node.owners):
                self.enqueue(f"delete:{node.uid}")

    # --- the workers ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        action, _, uid = key.partition(":")
        node = self.graph.get(uid)
        if node is None:
            return None  # deleted meanwhile; its dependents were queued then
        if action == "orphan":
            return await self._attempt_to_orphan(node)
        return await self._attempt_to_delete(node)

    async def _attempt_to_delete(self, node: Node) -> float | None:
        if node.being_deleted and not node.deleting_dependents:
            return None  # a one-way trip: its dependents are looked at once it is gone
        if not node.deleting_dependents and not any(
                self._suspect(node, ref) for ref in node.owners):
            return None  # every owner observed, in place and not waiting: nothing to verify
        latest = await self._live(node)
        if latest is None:
            return None
        meta = latest.get("metadata") or {}
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
            return await self._process_deleting_dependents(node, latest)
        refs = owner_refs(latest)
        if not refs:
            return None
        classified = await self._classify(node, refs)
        if classified is None:
            return None
        solid, dangling, waiting = classified
        if solid:
            if dangling or waiting:
                log.info("%s: removing references to absent or deleting owners %s", node,
                         [r.uid for r in dangling + waiting])
                await self._remove_owner_refs(node, latest, {r.uid for r in dangling + waiting})
            return None
        if waiting and self.graph.dependents(node.uid):
            if any(d.deleting_dependents for d in self.graph.dependents(node.uid)):
                # its dependent waits for it while it would wait for that dependent: a cycle
                latest = await self._unblock_owner_refs(node, latest)
            await self._delete(node, "Foreground")
            return None
        finalizers = meta.get("finalizers") or ()
        policy = ("Orphan" if ORPHAN in finalizers else
                  "Foreground" if FOREGROUND in finalizers else "Background")
        await self._delete(node, policy)
        return None

    async def _classify(self, node: Node, refs: tuple[OwnerRef, ...]
                        ) -> tuple[list[OwnerRef], list[OwnerRef], list[OwnerRef]] | None:
        """(solid, dangling, waitingForDependentsDeletion) from live reads of the owners;
        None when ``node`` is cluster-scoped and names a namespaced owner (never resolvable:
        left alone, as kube does)."""
        solid: list[OwnerRef] = []
        dangling: list[OwnerRef] = []
        waiting: list[OwnerRef] = []
        for ref in refs:
            res = _resolve(ref)
            if res.namespaced and not node.namespace:
                self._report_invalid_namespace(node, ref)
                return None
            owner = await self._owner(node, ref, res)
            if owner is None:
                self._report_invalid_namespace(node, ref)
                dangling.append(ref)
                continue
            meta = owner.get("metadata") or {}
            if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _owner(self, node: Node, ref: OwnerRef, res: Resource) -> Obj | None:
        """The owner ``ref`` names, read live (isDangling); None if it is absent."""
        ns = node.namespace if res.namespaced else ""
        key = (ref.group, ref.kind, ref.name, ref.uid, ns)
        if key in self.absent:
            self.absent.move_to_end(key)
            return None
        try:
            owner = await self.client.get(res, ref.name, ns)
        except NotFound:
            self._remember_absent(*key)
            return None
        if (owner.get("metadata") or {}).get("uid") != ref.uid:
            self._remember_absent(*key)
            return None
        return owner

    def _remember_absent(self, group: str, kind: str, name: str, uid: str, ns: str) -> None:
        self.absent[(group, kind, name, uid, ns)] = None
        self.absent.move_to_end((group, kind, name, uid, ns))
        while len(self.absent) > ABSENT_OWNER_CACHE:
            self.absent.popitem(last=False)

    def _report_invalid_namespace(self, node: Node, ref: OwnerRef) -> None:
        """An owner observed in another namespace (or a namespaced one named by a
        cluster-scoped object): kube's OwnerRefInvalidNamespace warning."""
        owner = self.graph.get(ref.uid)
        if owner is None or not owner.namespace or owner.namespace == node.namespace:
            return
        self.recorder.event(node.reference(), WARNING, "OwnerRefInvalidNamespace",
                            f"ownerRef [{ref.api_version}/{ref.kind}, namespace: "
                            f"{node.namespace}, name: {ref.name}, uid: {ref.uid}] does not "
                            f'exist in namespace "{node.namespace}"')

    async def _process_deleting_dependents(self, node: Node, latest: Obj) -> float | None:
        blocking = self.graph.blocking_dependents(node.uid)
        if not blocking:
            if not await self._caught_up(latest):
                return 1.0
            blocking = self.graph.blocking_dependents(node.uid)
        if not blocking:
            log.info("%s: no blocking dependents left; removing %s", node, FOREGROUND)
            await self._remove_finalizer(node, FOREGROUND)
            return None
        for dep in blocking:
            if not dep.deleting_dependents:
                self.enqueue(f"delete:{dep.uid}")
        return None

    async def _attempt_to_orphan(self, node: Node) -> float | None:
        latest = await self._live(node)
        if latest is None:
            return None
        meta = latest.get("metadata") or {}
        if not meta.get("deletionTimestamp") or ORPHAN not in (meta.get("finalizers") or ()):
            return None
        if not await self._caught_up(latest):
            return 1.0
        dependents = self.graph.dependents(node.uid)
        results = await asyncio.gather(*(self._release(dep, node.uid) for dep in dependents),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        log.info("%s: %d dependents orphaned; removing %s", node, len(dependents), ORPHAN)
        await self._remove_finalizer(node, ORPHAN)
        return None

    # --- API operations ------------------------------------------------------------------------

    async def _live(self, node: Node) -> Obj | None:
        """``node``'s object read from the apiserver; None if it is gone or was replaced."""
        try:
            obj = await self.client.get(node.res, node.name, node.namespace)
        except NotFound:
            return None
        return obj if (obj.get("metadata") or {}).get("uid") == node.uid else None

    async def _caught_up(self, latest: Obj) -> bool:
        """Wait until every informer reflects ``latest``'s resourceVersion (so the graph holds
        every dependent created before it); False if one lags past the timeout."""
        rv = int((latest.get("metadata") or {}).get("resourceVersion") or 0)
        results = await asyncio.gather(*(inf.wait_for_version(rv, CATCH_UP_TIMEOUT)
                                         for inf in self.informers))
        behind = [str(inf.resource) for inf, ok in zip(self.informers, results, strict=True)
                  if not ok]
        if behind:
            log.warning("caches of %s behind resourceVersion %d; waiting", ", ".join(behind), rv)
        return not behind

    async def _delete(self, node: Node, policy: str) -> None:
        log.info("deleting %s with propagationPolicy %s", node, policy)
        try:
            await self.client.delete(node.res, node.name, node.namespace,
                                     propagation_policy=policy, preconditions={"uid": node.uid})
        except NotFound:
            pass

    async def _patch_meta(self, node: Node, latest: Obj, changes: Obj) -> Obj | None:
        meta = latest.get("metadata") or {}
        patch = {"metadata": {**changes, "uid": node.uid,
                              "resourceVersion": meta.get("resourceVersion")}}
        try:
            return await self.client.patch(node.res, node.name, patch, node.namespace)
        except NotFound:
            return None

    async def _remove_owner_refs(self, node: Node, latest: Obj, uids: set[str]) -> None:
        refs = [r for r in (latest.get("metadata") or {}).get("ownerReferences") or ()
                if r.get("uid") not in uids]
        await self._patch_meta(node, latest, {"ownerReferences": refs or None})

    async def _unblock_owner_refs(self, node: Node, latest: Obj) -> Obj:
        refs = [{**r, "blockOwnerDeletion": False} if r.get("blockOwnerDeletion") else r
                for r in (latest.get("metadata") or {}).get("ownerReferences") or ()]
        return await self._patch_meta(node, latest, {"ownerReferences": refs}) or latest

    async def _release(self, dep: Node, owner_uid: str) -> None:
        """Remove the reference to ``owner_uid`` from ``dep`` (read fresh, guarded by its
        resourceVersion; retried on conflict)."""
        for _ in range(5):
            latest = await self._live(dep)
            if latest is None or not any(r.get("uid") == owner_uid for r in (
                    latest.get("metadata") or {}).get("ownerReferences") or ()):
                return
            try:
                await self._remove_owner_refs(dep, latest, {owner_uid})
                return
            except Conflict:
                continue
        raise Conflict(dep.res.plural, dep.name, group=dep.res.group)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        for _ in range(5):
            latest = await self._live(node)
            if latest is None:
                return
            finalizers = list((latest.get("metadata") or {}).get("finalizers") or ())
            if finalizer not in finalizers:
                return
            rest = [f for f in finalizers if f != finalizer]
            try:
                await self._patch_meta(node, latest, {"finalizers": rest or None})
                return
            except Conflict:
                continue
        raise Conflict(node.res.plural, node.name, group=node.res.group)


def _resolve(ref: OwnerRef) -> Resource:
    rd = lookup_kind(ref.api_version, ref.kind)
    if rd is None or rd.virtual:
        raise UnknownOwnerKind(ref)
    return Resource.of(rd)
