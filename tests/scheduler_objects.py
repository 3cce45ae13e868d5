"""Node and pod objects for the scheduler's in-process tests, shaped as the apiserver serves
them (only the fields scheduling reads)."""

from __future__ import annotations

from typing import Any

from control.scheduler.algorithm import Algorithm
from control.scheduler.cache import SchedulerCache

Obj = dict[str, Any]


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
         unschedulable: bool = False, allocatable: Obj | None = None, **extra: str) -> Obj:
    alloc = allocatable if allocatable is not None else {
        "cpu": cpu, "memory": memory, "pods": pods, **extra}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name,
                     "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": alloc, "capacity": alloc},
    }


def container(cpu: str | None = "100m", memory: str | None = "100Mi", *,
              ports: list[Obj] | None = None, limits: Obj | None = None,
              restart: str | None = None, **other: str) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    requests.update(other)
    c: Obj = {"name": "c", "image": "busybox", "resources": {"requests": requests}}
    if limits:
        c["resources"]["limits"] = limits
    if ports:
        c["ports"] = ports
    if restart:
        c["restartPolicy"] = restart
    return c


def pod(name: str, *, cpu: str | None = "100m", memory: str | None = "100Mi",
        namespace: str = "default", labels: dict[str, str] | None = None,
        priority: int = 0, node_name: str = "", containers: list[Obj] | None = None,
        created: str = "2026-01-01T00:00:00Z", owner: str = "", **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                 "labels": labels if labels is not None else {"app": "web"},
                 "creationTimestamp": created}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": owner, "uid": f"uid-{owner}", "controller": True}]
    body: Obj = {"containers": containers or [container(cpu, memory)], "priority": priority,
                 "schedulerName": "default-scheduler", **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body, "status": {}}


def cluster(*nodes: Obj, placed: tuple[Obj, ...] = (), seed: int = 0,
            percentage: int = 0) -> tuple[SchedulerCache, Algorithm]:
    cache = SchedulerCache()
    for n in nodes:
        cache.set_node(n)
    for p in placed:
        cache.add_pod(p)
    return cache, Algorithm(cache, seed=seed, percentage=percentage)
