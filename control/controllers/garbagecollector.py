"""The garbage collector: deletes objects whose owners are gone, and completes the cascading
deletions the apiserver starts (kubernetes ``pkg/controller/garbagecollector``).

The apiserver's DELETE only marks: ``propagationPolicy: Foreground`` adds the
``foregroundDeletion`` finalizer and ``Orphan`` the ``orphan`` finalizer to an object it
stamps with ``deletionTimestamp``; ``Background`` (the default) deletes the object at once.
The collector does the rest, for every resource that can be listed, watched and deleted (one
shared informer each, events excepted), through a :class:`~.gcgraph.Graph` of owner references:

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

Custom resources are learned as kube's ``Sync`` does (:mod:`.resourcediscovery`): while the
collector runs it looks at discovery every ``Settings.resource_discovery_period`` seconds (30),
gives each newly served resource an informer from the shared factory and drops those no
longer served (their objects leave the graph, so their dependents are looked at again).  An
owner reference is resolved by apiVersion and kind through the catalog and discovery; a kind
discovery does not know (yet) is never taken for an absent owner: the item is retried with
back-off, an early discovery is asked for, and it is looked at again once discovery learns
new kinds.

Work items are ``delete:<uid>`` (look at one object: attemptToDelete) and ``orphan:<uid>``
(release one owner's dependents: attemptToOrphan).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from control.api.catalog import RESOURCES
from control.api.errors import APIError, NotFound
from control.client import WARNING, Informer, Resource
from control.client.discovery import DiscoveredResource

from . import gcwrites as ops
from .base import Controller, ControllerContext
from .gcgraph import FOREGROUND, ORPHAN, Graph, Node, OwnerRef, matches, owner_refs
from .resourcediscovery import ResourceChange, ResourceDiscovery

__all__ = ["GarbageCollector", "UnknownOwnerKind", "monitored_resources"]

log = logging.getLogger("ketch.controllers.garbagecollector")

Obj = dict[str, Any]
ABSENT_OWNER_CACHE = 500  # kube's absentOwnerCache size
CATCH_UP_TIMEOUT = 30.0
INITIAL_SYNC_TIMEOUT = 30.0  # kube's initialSyncTimeout: then collect anyway
# Events are never owners nor owned in practice, and the most numerous kind (kube ignores them).
_IGNORED = {("", "events"), ("events.k8s.io", "events")}


def monitored_resources() -> list[Resource]:
    """Every built-in resource that can be listed, watched and deleted, events excepted."""
    return [Resource.of(rd) for rd in RESOURCES
            if not rd.virtual and (rd.group, rd.resource) not in _IGNORED
            and {"list", "watch", "delete"} <= set(rd.verbs)]


def deletable(d: DiscoveredResource) -> bool:
    """kube's ``GetDeletableResources``: a discovered resource the collector monitors."""
    return (d.supports("list", "watch", "delete")
            and (d.resource.group, d.resource.plural) not in _IGNORED)


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
        self.monitors: dict[Resource, Informer] = {}
        self.discovery = ResourceDiscovery(
            ctx.client, ctx.clock, period=ctx.settings.resource_discovery_period,
            wanted=deletable)
        #: Items that failed on an owner kind discovery did not know: looked at again as
        #: soon as discovery learns new kinds.
        self._unresolved: set[str] = set()
        for res in monitored_resources():
            self._monitor(res)

    @property
    def informers(self) -> list[Informer]:
        return list(self.monitors.values())

    # --- the monitors (kube's resyncMonitors) ----------------------------------------------

    def _monitor(self, res: Resource) -> None:
        """Feed the graph from the shared informer of ``res`` (again, if the one fed from
        before was stopped: its objects are forgotten and relisted)."""
        inf = self.ctx.informer(res)
        held = self.monitors.get(res)
        if held is inf:
            return
        if held is not None:
            self._forget_objects(res)
        self.monitors[res] = inf
        inf.add_handler(on_add=lambda o, r=res: self._observe(r, o),
                        on_update=lambda old, new, r=res: self._updated(r, old, new),
                        on_delete=self._deleted)

    def _unmonitor(self, res: Resource) -> None:
        """``res`` is no longer served: stop its informer and forget its objects."""
        if self.monitors.pop(res, None) is not None:
            self.ctx.informers.forget(res)
            self._forget_objects(res)

    def _forget_objects(self, res: Resource) -> None:
        """Drop the nodes of ``res`` from the graph; their dependents are looked at again
        (verified live, so an owner that still exists is kept)."""
        for node in self.graph:
            if node.res == res:
                self._dropped(self.graph.remove(_uid_only(node.uid)), absent=False)

    def _synced_discovery(self, change: ResourceChange) -> None:
        for res in change.removed:
            self._unmonitor(res)
        for res in self.discovery.resources:
            self._monitor(res)
        if change.kinds_changed:
            for key in sorted(self._unresolved):
                self.enqueue(key)
            self._unresolved.clear()

    async def run(self) -> None:
        """Learn the served resources, wait (a while) for their caches, then collect while
        discovery is looked at again every period."""
        async with self.discovery.running(self._synced_discovery, name=self.name):
            synced = await asyncio.gather(*(inf.wait_synced(INITIAL_SYNC_TIMEOUT)
                                            for inf in self.monitors.values()))
            if not all(synced):
                log.info("not all resource monitors could be synced, proceeding anyway")
            await super().run()

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
        self._dropped(self.graph.remove(obj), absent=True)

    def _dropped(self, node: Node | None, *, absent: bool) -> None:
        """``node`` left the graph (deleted if ``absent``): its dependents are looked at."""
        if node is None:
            return
        dependents = self.graph.dependents(node.uid)
        if dependents and absent:
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
        latest = await ops.live(self.client, node)
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
                await ops.remove_owner_refs(self.client, node, latest,
                                            {r.uid for r in dangling + waiting})
            return None
        if waiting and self.graph.dependents(node.uid):
            if any(d.deleting_dependents for d in self.graph.dependents(node.uid)):
                # its dependent waits for it while it would wait for that dependent: a cycle
                latest = await ops.unblock_owner_refs(self.client, node, latest)
            await ops.delete(self.client, node, "Foreground")
            return None
        finalizers = meta.get("finalizers") or ()
        policy = ("Orphan" if ORPHAN in finalizers else
                  "Foreground" if FOREGROUND in finalizers else "Background")
        await ops.delete(self.client, node, policy)
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
            res = self._resolve(node, ref)
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
            await ops.remove_finalizer(self.client, node, FOREGROUND)
            return None
        for dep in blocking:
            if not dep.deleting_dependents:
                self.enqueue(f"delete:{dep.uid}")
        return None

    async def _attempt_to_orphan(self, node: Node) -> float | None:
        latest = await ops.live(self.client, node)
        if latest is None:
            return None
        meta = latest.get("metadata") or {}
        if not meta.get("deletionTimestamp") or ORPHAN not in (meta.get("finalizers") or ()):
            return None
        if not await self._caught_up(latest):
            return 1.0
        dependents = self.graph.dependents(node.uid)
        results = await asyncio.gather(*(ops.release(self.client, dep, node.uid)
                                         for dep in dependents),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        log.info("%s: %d dependents orphaned; removing %s", node, len(dependents), ORPHAN)
        await ops.remove_finalizer(self.client, node, ORPHAN)
        return None

    # --- helpers ------------------------------------------------------------------------------

    async def _caught_up(self, latest: Obj) -> bool:
        """Wait until every informer reflects ``latest``'s resourceVersion (so the graph holds
        every dependent created before it); False if one lags past the timeout."""
        rv = int((latest.get("metadata") or {}).get("resourceVersion") or 0)
        informers = self.informers
        results = await asyncio.gather(*(inf.wait_for_version(rv, CATCH_UP_TIMEOUT)
                                         for inf in informers))
        behind = [str(inf.resource) for inf, ok in zip(informers, results, strict=True)
                  if not ok]
        if behind:
            log.warning("caches of %s behind resourceVersion %d; waiting", ", ".join(behind), rv)
        return not behind

    def _resolve(self, node: Node, ref: OwnerRef) -> Resource:
        """The resource ``ref`` names (kube's restMapper); UnknownOwnerKind, to be retried,
        when discovery does not know it (yet): an early discovery is asked for and ``node``
        is looked at again when it learns new kinds."""
        res = self.discovery.resolve(ref.api_version, ref.kind)
        if res is None:
            self._unresolved.add(f"delete:{node.uid}")
            self.discovery.request()
            raise UnknownOwnerKind(ref)
        return res


def _uid_only(uid: str) -> Obj:
    return {"metadata": {"uid": uid}}
