"""The scheduler's own picture of the cluster: nodes, the pods placed on them (bound or only
assumed), namespaces' labels and nominated pods, updated by informer events and by the
scheduler's own decisions.

Lifecycle of a placement (kube-scheduler's cache): :meth:`assume` puts the pod on the node at
once, before the bind is sent, so the next decision sees the capacity used; the informer's
event for the bound pod confirms it (:meth:`add_pod`, same node: nothing changes); a failed
bind :meth:`forget`\\ s it.  A pod is on at most one node at a time, so the requested totals
of a node are always exactly the sum over its pods.

Every change to a node bumps ``seq`` and is logged, so an equivalence class can re-check only
the nodes changed since it last looked (:meth:`changed_since`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from .counting import Counters
from .nodeinfo import NodeInfo
from .podinfo import PodInfo, PodTemplate, class_key, pod_info, same_class, template_of

__all__ = ["SchedulerCache"]

log = logging.getLogger(__name__)

_TEMPLATES = 20_000


class SchedulerCache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._placed: dict[str, tuple[PodInfo, str, bool]] = {}  # uid -> (pod, node, assumed)
        self._templates: OrderedDict[str, PodTemplate] = OrderedDict()
        self._ns_labels: dict[str, Mapping[str, str]] = {}
        self.nominated: dict[str, PodInfo] = {}  # uid -> pending pod with nominatedNodeName
        self.counters = Counters(self._iter_placed, labels=self._node_labels)
        self.seq = 0
        self._log: list[str] = []
        self._log_base = 0
        self._order: list[NodeInfo] = []
        self._positions: dict[str, int] = {}
        self._order_dirty = True
        self.order_version = 0
        # nodes with a PreferNoSchedule taint (the TaintToleration score matters only then)
        self.soft_tainted: set[str] = set()
        # placed pods carrying required anti-affinity / any pod affinity: uid -> (pod, node)
        self.anti_pods: dict[str, tuple[PodInfo, str]] = {}
        self.affinity_pods: dict[str, tuple[PodInfo, str]] = {}

    # --- templates --------------------------------------------------------------------

    def template(self, pod: Mapping[str, Any]) -> PodTemplate:
        """The shared template of ``pod``'s equivalence class (parsed once per class)."""
        key = class_key(pod)
        t = self._templates.get(key)
        if t is None:
            t = self._templates[key] = template_of(pod, key)
            if len(self._templates) > _TEMPLATES:
                self._templates.popitem(last=False)
        return t

    def pod_info(self, pod: Mapping[str, Any], previous: PodInfo | None = None) -> PodInfo:
        """``previous``: an earlier version of the same pod, whose template is reused when
        nothing scheduling reads has changed (no re-hashing on status updates)."""
        if previous is not None and same_class(previous.obj, pod):
            return pod_info(pod, previous.template)
        return pod_info(pod, self.template(pod))

    # --- nodes --------------------------------------------------------------------------

    def _node_labels(self, name: str) -> Mapping[str, str] | None:
        info = self.nodes.get(name)
        return info.labels if info is not None and info.node is not None else None

    def _touch(self, info: NodeInfo) -> None:
        self.seq += 1
        self._log.append(info.name)
        if len(self._log) > 4 * len(self.nodes) + 4096:
            drop = len(self._log) // 2
            del self._log[:drop]
            self._log_base += drop

    def changed_since(self, seq: int) -> list[str] | None:
        """Names of nodes changed after ``seq`` (repeats possible), or None when the log no
        longer reaches back that far (the caller re-checks everything)."""
        if seq < self._log_base:
            return None
        return self._log[seq - self._log_base:]

    def set_node(self, node: Mapping[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name") or "")
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
            self._order_dirty = True
        old_zone, had_node = info.zone_key, info.node is not None
        old_labels = info.labels
        info.set_node(node)
        if not had_node or old_labels != info.labels:
            self.counters.nodes_changed()
        if any(t.get("effect") == "PreferNoSchedule" for t in info.taints):
            self.soft_tainted.add(name)
        else:
            self.soft_tainted.discard(name)
        if not had_node or info.zone_key != old_zone:
            self._order_dirty = True
        self._touch(info)

    def refresh_node(self, node: Mapping[str, Any]) -> None:
        """A new version of a Node whose scheduling-relevant parts did not change (a
        heartbeat): keep the object, invalidate nothing."""
        info = self.nodes.get(str((node.get("metadata") or {}).get("name") or ""))
        if info is None or info.node is None:
            self.set_node(node)
        else:
            info.node = node

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        info.node = None
        self.soft_tainted.discard(name)
        self.counters.nodes_changed()
        if not info.pods:
            del self.nodes[name]
        self._order_dirty = True
        self._touch(info)

    def ordered_nodes(self) -> list[NodeInfo]:
        """Nodes with a Node object, interleaved across zones (kube's node tree), so a
        round-robin walk visits zones evenly.  Stable until a node comes, goes or moves."""
        if self._order_dirty:
            zones: dict[str, list[NodeInfo]] = {}
            for info in self.nodes.values():
                if info.node is not None:
                    zones.setdefault(info.zone_key, []).append(info)
            lists = list(zones.values())
            order: list[NodeInfo] = []
            for i in range(max((len(z) for z in lists), default=0)):
                order.extend(z[i] for z in lists if i < len(z))
            self._order = order
            self._positions = {n.name: i for i, n in enumerate(order)}
            self._order_dirty = False
            self.order_version += 1
        return self._order

    def position(self, name: str) -> int | None:
        """A node's index in :meth:`ordered_nodes` (None if it is not schedulable)."""
        self.ordered_nodes()
        return self._positions.get(name)

    # --- namespaces ---------------------------------------------------------------------

    def set_namespace(self, name: str, labels: Mapping[str, str] | None) -> None:
        if labels is None:
            self._ns_labels.pop(name, None)
        else:
            self._ns_labels[name] = dict(labels)
        self.counters.clear()

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        return self._ns_labels.get(name)

    # --- placed pods ----------------------------------------------------------------------

    def _iter_placed(self) -> Iterator[tuple[PodInfo, str]]:
        for pod, node, _ in self._placed.values():
            yield pod, node

    def placed(self, uid: str) -> tuple[PodInfo, str, bool] | None:
        """``(pod, node, assumed)`` for a pod on a node in this cache, else None."""
        return self._placed.get(uid)

    def _place(self, pod: PodInfo, node: str, assumed: bool) -> None:
        info = self.nodes.get(node)
        if info is None:
            info = self.nodes[node] = NodeInfo(node)
        info.add_pod(pod)
        self._placed[pod.uid] = (pod, node, assumed)
        if pod.template.anti_affinity:
            self.anti_pods[pod.uid] = (pod, node)
        if pod.template.has_pod_affinity:
            self.affinity_pods[pod.uid] = (pod, node)
        self.counters.added(pod, node)
        self._touch(info)

    def _unplace(self, uid: str) -> PodInfo | None:
        entry = self._placed.pop(uid, None)
        if entry is None:
            return None
        pod, node, _ = entry
        info = self.nodes.get(node)
        if info is not None:
            info.remove_pod(uid)
            if info.node is None and not info.pods:
                del self.nodes[node]
            self._touch(info)
        self.anti_pods.pop(uid, None)
        self.affinity_pods.pop(uid, None)
        self.counters.removed(pod, node)
        return pod

    def assume(self, pod: PodInfo, node: str) -> None:
        """Place ``pod`` on ``node`` before its bind is confirmed.  Raises ValueError if the
        pod is already placed (a pod is never bound twice)."""
        if pod.uid in self._placed:
            raise ValueError(f"pod {pod.key} is already placed on {self._placed[pod.uid][1]}")
        self.nominated.pop(pod.uid, None)
        self._place(pod, node, True)

    def forget(self, uid: str) -> None:
        """Undo :meth:`assume` (the bind failed); a confirmed pod is left alone."""
        entry = self._placed.get(uid)
        if entry is not None and entry[2]:
            self._unplace(uid)

    def add_pod(self, pod: Mapping[str, Any]) -> None:
        """A pod with ``spec.nodeName`` as the informer reports it (added or updated):
        confirms an assumed placement, moves a pod the cache had elsewhere, or places it."""
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        meta = pod.get("metadata") or {}
        entry = self._placed.get(str(meta.get("uid") or f"{meta.get('namespace')}/"
                                                          f"{meta.get('name')}"))
        info = self.pod_info(pod, entry[0] if entry is not None else None)
        if entry is not None and entry[1] == node and entry[0].template is info.template \
                and entry[0].terminating == info.terminating:
            self._placed[info.uid] = (info, node, False)
            info_node = self.nodes[node]
            info_node.pods[info.uid] = info
            return
        if entry is not None:
            self._unplace(info.uid)
        self.nominated.pop(info.uid, None)
        self._place(info, node, False)

    def remove_pod(self, uid: str) -> PodInfo | None:
        self.nominated.pop(uid, None)
        return self._unplace(uid)

    def pods_on(self, node: str) -> Mapping[str, PodInfo]:
        info = self.nodes.get(node)
        return info.pods if info is not None else {}

    # --- nominated pods (preemption) ------------------------------------------------------

    def nominate(self, pod: PodInfo, node: str) -> None:
        if node:
            pod.nominated_node = node
            self.nominated[pod.uid] = pod
        else:
            self.nominated.pop(pod.uid, None)

    def nominated_on(self, node: str, at_least: int, exclude: str) -> list[PodInfo]:
        """Pods nominated to ``node`` with priority >= ``at_least`` (other than ``exclude``)."""
        return [p for p in self.nominated.values()
                if p.nominated_node == node and p.priority >= at_least and p.uid != exclude]

    @property
    def placed_count(self) -> int:
        return len(self._placed)
