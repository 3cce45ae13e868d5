"""The garbage collector's dependency graph (kubernetes ``pkg/controller/garbagecollector``
``graph.go`` and the graph half of ``graph_builder.go``).

Every object of every monitored resource is a :class:`Node`: its identity (resource,
namespace, name, uid), its owner references and whether it is being deleted, and if so with
the ``foregroundDeletion`` or ``orphan`` finalizer.  Dependents are indexed by the *owner uid
they reference*, whether or not that owner has been observed: an owner that does not exist is
just a uid with dependents and no node, which is how the collector finds the dependents to
verify and delete.

The graph is a derived index of the informers' caches, like their own indexes: the
collector's informer handlers apply each change with :meth:`Graph.put` / :meth:`Graph.remove`
(cheap dictionary updates) and read back what changed to decide what to enqueue.  It holds no
objects, only the few fields the collector decides on.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from control.client import Resource

__all__ = [
    "FOREGROUND",
    "ORPHAN",
    "Change",
    "Graph",
    "Node",
    "OwnerRef",
    "matches",
    "owner_refs",
]

Obj = dict[str, Any]

#: The finalizers the apiserver adds for ``propagationPolicy: Foreground`` and ``Orphan``.
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """One ``metadata.ownerReferences`` entry."""

    api_version: str
    kind: str
    name: str
    uid: str
    block_owner_deletion: bool = False
    controller: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @classmethod
    def of(cls, ref: Obj) -> OwnerRef:
        return cls(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""),
                   str(ref.get("name") or ""), str(ref.get("uid") or ""),
                   bool(ref.get("blockOwnerDeletion")), bool(ref.get("controller")))

    def __str__(self) -> str:  # kube's objectReference.String() without the namespace
        return f"{self.api_version}/{self.kind}, name: {self.name}, uid: {self.uid}"


def owner_refs(obj: Obj) -> tuple[OwnerRef, ...]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return tuple(OwnerRef.of(r) for r in refs if isinstance(r, dict) and r.get("uid"))


@dataclass(slots=True)
class Node:
    """What the collector knows of one object."""

    res: Resource
    namespace: str
    name: str
    uid: str
    resource_version: str = ""
    owners: tuple[OwnerRef, ...] = ()
    being_deleted: bool = False
    #: Being deleted with the ``foregroundDeletion`` finalizer: waits for its dependents.
    deleting_dependents: bool = False
    #: Being deleted with the ``orphan`` finalizer: its dependents are to be released.
    orphaning: bool = False

    @classmethod
    def of(cls, res: Resource, obj: Obj) -> Node:
        meta = obj.get("metadata") or {}
        finalizers = meta.get("finalizers") or ()
        deleting = bool(meta.get("deletionTimestamp"))
        return cls(res, str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                   str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""),
                   owner_refs(obj), deleting, deleting and FOREGROUND in finalizers,
                   deleting and ORPHAN in finalizers)

    def ref_to(self, owner_uid: str) -> OwnerRef | None:
        for ref in self.owners:
            if ref.uid == owner_uid:
                return ref
        return None

    def reference(self) -> Obj:
        """A minimal object for an Event's ``involvedObject``."""
        meta = {"name": self.name, "uid": self.uid}
        if self.namespace:
            meta["namespace"] = self.namespace
        return {"apiVersion": self.res.api_version, "kind": self.res.kind, "metadata": meta}

    def __str__(self) -> str:
        return (f"[{self.res.api_version}/{self.res.kind}, namespace: {self.namespace}, "
                f"name: {self.name}, uid: {self.uid}]")


@dataclass
class Change:
    """What one :meth:`Graph.put` changed, for the handler to act on."""

    node: Node
    before: Node | None
    added: list[OwnerRef] = field(default_factory=list)
    removed: list[OwnerRef] = field(default_factory=list)
    #: References whose ``blockOwnerDeletion`` went from true to false.
    unblocked: list[OwnerRef] = field(default_factory=list)

    @property
    def starts_orphaning(self) -> bool:
        return self.node.orphaning and not (self.before is not None and self.before.orphaning)

    @property
    def starts_deleting_dependents(self) -> bool:
        return self.node.deleting_dependents and not (
            self.before is not None and self.before.deleting_dependents)


class Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._dependents: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self.nodes.values()))

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def put(self, res: Resource, obj: Obj) -> Change | None:
        """Record ``obj`` (added or changed); None for an object without a uid."""
        node = Node.of(res, obj)
        if not node.uid:
            return None
        before = self.nodes.get(node.uid)
        self.nodes[node.uid] = node
        change = Change(node, before)
        old = {r.uid: r for r in (before.owners if before is not None else ())}
        new = {r.uid: r for r in node.owners}
        change.added = [r for u, r in new.items() if u not in old]
        change.removed = [r for u, r in old.items() if u not in new]
        change.unblocked = [r for u, r in new.items()
                            if u in old and old[u].block_owner_deletion
                            and not r.block_owner_deletion]
        self._unlink(node.uid, change.removed)
        self._link(node.uid, change.added)
        return change

    def remove(self, obj: Obj) -> Node | None:
        """Forget a deleted object; the node it had, if any (its dependents stay indexed
        under its uid until they are deleted or release it)."""
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        node = self.nodes.pop(uid, None)
        if node is not None:
            self._unlink(uid, node.owners)
        return node

    def dependents(self, owner_uid: str) -> list[Node]:
        """The nodes that reference ``owner_uid`` (observed or not) as an owner."""
        return [self.nodes[u] for u in self._dependents.get(owner_uid, ()) if u in self.nodes]

    def blocking_dependents(self, owner_uid: str) -> list[Node]:
        """Dependents whose reference to ``owner_uid`` has ``blockOwnerDeletion``."""
        out = []
        for dep in self.dependents(owner_uid):
            ref = dep.ref_to(owner_uid)
            if ref is not None and ref.block_owner_deletion:
                out.append(dep)
        return out

    def _link(self, uid: str, refs: Iterable[OwnerRef]) -> None:
        for r in refs:
            self._dependents.setdefault(r.uid, set()).add(uid)

    def _unlink(self, uid: str, refs: Iterable[OwnerRef]) -> None:
        for r in refs:
            deps = self._dependents.get(r.uid)
            if deps is not None:
                deps.discard(uid)
                if not deps:
                    del self._dependents[r.uid]


def matches(ref: OwnerRef, owner: Node) -> bool:
    """Whether ``ref`` names ``owner`` by the coordinates it was observed with (group, kind,
    name; the uid is the index it was found by)."""
    return (ref.group == owner.res.group and ref.kind == owner.res.kind
            and ref.name == owner.name)
