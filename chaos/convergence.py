"""Is the cluster whole?  The convergence test a ``--cluster`` chaos run applies after every
fault's heal (and times), from a fresh, consistent read of the API, the nodes' run records and
probes through the service proxies.  :func:`problems` lists what is still wrong (empty: the
cluster has converged):

* every Node Ready, without a not-ready or unreachable taint;
* every Deployment exactly at its replicas: that many pods, none being deleted, all of its
  current template (image), Running and Ready on Ready nodes; its status says so
  (observedGeneration, replicas, updated, ready, available) and its old ReplicaSets are at 0;
* every ReplicaSet no Deployment owns exactly at its replicas, the same way;
* the StatefulSet: pods ``NAME-0 … NAME-(n-1)`` and no others, current image, Running and
  Ready, status ready and revisions current;
* every Job complete with ``succeeded == completions`` (Indexed: every index completed) and no
  pod still active;
* every Service's Endpoints hold exactly the IPs of the Ready pods its selector matches, and
  a GET through every node's service proxy (NodePort) answers 200;
* no pod bound to a node that does not exist;
* no orphaned process: every container process alive on a node belongs to a pod bound to that
  node that is neither finished nor being deleted; and every Running pod's containers have a
  live process on its node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aiohttp

from control.api.selectors import from_label_selector
from control.client import ApiClient
from control.client import resources as R

from .cluster_observer import RunTracker
from .cluster_workload import NAMESPACE, ClusterWorkload

__all__ = ["problems", "snapshot"]

Obj = dict[str, Any]
_NODE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


async def snapshot(c: ApiClient) -> dict[str, list[Obj]]:
    """One consistent list of each kind the test reads (pods of every namespace)."""
    kinds = {"nodes": (R.NODES, ""), "pods": (R.PODS, ""),
             "deployments": (R.DEPLOYMENTS, NAMESPACE), "replicasets": (R.REPLICASETS, NAMESPACE),
             "statefulsets": (R.STATEFULSETS, NAMESPACE), "jobs": (R.JOBS, NAMESPACE),
             "services": (R.SERVICES, NAMESPACE), "endpoints": (R.ENDPOINTS, NAMESPACE)}
    lists = await asyncio.gather(*(c.list(res, ns) for res, ns in kinds.values()))
    return {k: list(v.get("items") or []) for k, v in zip(kinds, lists, strict=True)}


def _meta(o: Obj) -> Obj:
    m: Obj = o.get("metadata") or {}
    return m


def _ready(o: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (o.get("status") or {}).get("conditions") or [])


def _image(o: Obj) -> str:
    spec = o.get("spec") or {}
    return str(((spec.get("template") or {}).get("spec") or spec).get("containers", [{}])[0]
               .get("image"))


def _selected(pods: Iterable[Obj], selector: Obj | None) -> list[Obj]:
    sel = from_label_selector(selector or {})
    return [p for p in pods if sel.matches(_meta(p).get("labels") or {})]


def _pod_problems(what: str, pods: list[Obj], image: str, ready_nodes: set[str]) -> list[str]:
    out = []
    for p in pods:
        name, spec = _meta(p).get("name"), p.get("spec") or {}
        if _meta(p).get("deletionTimestamp"):
            out.append(f"{what}: pod {name} is being deleted")
        elif (p.get("status") or {}).get("phase") != "Running" or not _ready(p):
            out.append(f"{what}: pod {name} is {(p.get('status') or {}).get('phase')}"
                       f"{'' if _ready(p) else ', not Ready'}")
        elif spec.get("nodeName") not in ready_nodes:
            out.append(f"{what}: pod {name} is on node {spec.get('nodeName')}, not Ready")
        if _image(p) != image:
            out.append(f"{what}: pod {name} runs {_image(p)}, not {image}")
    return out


def _deployment(d: Obj, snap: dict[str, list[Obj]], pods: list[Obj],
                ready_nodes: set[str]) -> list[str]:
    name, spec, status = _meta(d).get("name"), d.get("spec") or {}, d.get("status") or {}
    want, what = int(spec.get("replicas", 1)), f"deployment {_meta(d).get('name')}"
    mine = _selected(pods, spec.get("selector"))
    out = [] if len(mine) == want else [f"{what}: {len(mine)} pods, wants {want}"]
    out += _pod_problems(what, mine, _image(d), ready_nodes)
    if (status.get("observedGeneration") or 0) < (_meta(d).get("generation") or 0):
        out.append(f"{what}: status not observed yet")
    for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
        if int(status.get(field) or 0) != want:
            out.append(f"{what}: status.{field} {status.get(field)}, wants {want}")
    for rs in snap["replicasets"]:
        owner = [r for r in _meta(rs).get("ownerReferences") or [] if r.get("controller")]
        if owner and owner[0].get("name") == name and _image(rs) != _image(d) and (
                (rs.get("spec") or {}).get("replicas") or (rs.get("status") or {}).get(
                    "replicas")):
            out.append(f"{what}: old ReplicaSet {_meta(rs).get('name')} not scaled to 0")
    return out


def _replicaset(rs: Obj, pods: list[Obj], ready_nodes: set[str]) -> list[str]:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    want, what = int(spec.get("replicas", 1)), f"replicaset {_meta(rs).get('name')}"
    mine = _selected(pods, spec.get("selector"))
    out = [] if len(mine) == want else [f"{what}: {len(mine)} pods, wants {want}"]
    out += _pod_problems(what, mine, _image(rs), ready_nodes)
    if int(status.get("readyReplicas") or 0) != want:
        out.append(f"{what}: status.readyReplicas {status.get('readyReplicas')}, wants {want}")
    return out


def _statefulset(s: Obj, pods: list[Obj], ready_nodes: set[str]) -> list[str]:
    name, spec, status = _meta(s).get("name"), s.get("spec") or {}, s.get("status") or {}
    want, what = int(spec.get("replicas", 1)), f"statefulset {name}"
    mine = _selected(pods, spec.get("selector"))
    names = sorted(_meta(p).get("name") or "" for p in mine)
    out = [] if names == sorted(f"{name}-{i}" for i in range(want)) else [
        f"{what}: pods {names}, wants {name}-0..{want - 1}"]
    out += _pod_problems(what, mine, _image(s), ready_nodes)
    if int(status.get("readyReplicas") or 0) != want:
        out.append(f"{what}: status.readyReplicas {status.get('readyReplicas')}, wants {want}")
    if status.get("currentRevision") != status.get("updateRevision"):
        out.append(f"{what}: rollout not finished (revisions)")
    return out


def _job(j: Obj, pods: list[Obj]) -> list[str]:
    spec, status, what = j.get("spec") or {}, j.get("status") or {}, \
        f"job {_meta(j).get('name')}"
    completions = int(spec.get("completions") or 1)
    out = []
    if not any(c.get("type") == "Complete" and c.get("status") == "True"
               for c in status.get("conditions") or []):
        out.append(f"{what}: not complete ({status.get('succeeded') or 0}/{completions})")
    elif int(status.get("succeeded") or 0) != completions:
        out.append(f"{what}: succeeded {status.get('succeeded')}, completions {completions}")
    if spec.get("completionMode") == "Indexed" and _indexes(status.get("completedIndexes")) \
            != set(range(completions)):
        out.append(f"{what}: completed indexes {status.get('completedIndexes')!r}")
    uid = _meta(j).get("uid")
    active = [p for p in pods if any(r.get("uid") == uid for r in _meta(p).get(
        "ownerReferences") or []) and (p.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed")]
    if active:
        out.append(f"{what}: {len(active)} pods still active")
    return out


def _indexes(text: str | None) -> set[int]:
    out: set[int] = set()
    for part in filter(None, (text or "").split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _service(s: Obj, endpoints: dict[str, Obj], pods: list[Obj]) -> list[str]:
    name = _meta(s).get("name") or ""
    ready = {(p.get("status") or {}).get("podIP") for p in _selected(
        pods, {"matchLabels": (s.get("spec") or {}).get("selector") or {}})
        if _ready(p) and not _meta(p).get("deletionTimestamp")}
    ep = endpoints.get(name) or {}
    got = {a.get("ip") for sub in ep.get("subsets") or [] for a in sub.get("addresses") or []}
    not_ready = [a.get("ip") for sub in ep.get("subsets") or []
                 for a in sub.get("notReadyAddresses") or []]
    out = [] if got == ready else [(f"service {name}: endpoints {sorted(map(str, got))}, ready "
                                   f"pods {sorted(map(str, ready))}")]
    if not_ready:
        out.append(f"service {name}: not-ready endpoints {not_ready}")
    return out


def _processes(pods: list[Obj], live: list[Obj]) -> list[str]:
    by_uid = {_meta(p).get("uid"): p for p in pods}
    out = []
    running: set[tuple[str, str]] = set()
    for run in live:
        pod = by_uid.get(run.get("uid"))
        where = f"{run.get('namespace')}/{run.get('pod')} container {run.get('container')}"
        running.add((str(run.get("uid")), str(run.get("container"))))
        if pod is None:
            out.append(f"orphaned process {run.get('pid')} on {run.get('node')}: {where} "
                       "(pod gone)")
        elif (pod.get("spec") or {}).get("nodeName") != run.get("node"):
            out.append(f"orphaned process {run.get('pid')} on {run.get('node')}: {where} "
                       f"(pod bound to {(pod.get('spec') or {}).get('nodeName')})")
        elif _meta(pod).get("deletionTimestamp") or (pod.get("status") or {}).get(
                "phase") in ("Succeeded", "Failed"):
            out.append(f"orphaned process {run.get('pid')} on {run.get('node')}: {where} "
                       f"(pod {'being deleted' if _meta(pod).get('deletionTimestamp') else 'finished'})")
    for p in pods:
        if (p.get("status") or {}).get("phase") != "Running" or _meta(p).get("deletionTimestamp"):
            continue
        for c in (p.get("spec") or {}).get("containers") or []:
            if (str(_meta(p).get("uid")), str(c.get("name"))) not in running:
                out.append(f"pod {_meta(p).get('namespace')}/{_meta(p).get('name')} is Running "
                           f"but container {c.get('name')} has no process")
    return out


async def problems(c: ApiClient, tracker: RunTracker, workload: ClusterWorkload,
                   session: aiohttp.ClientSession) -> list[str]:
    """What keeps the cluster from being whole now (empty: converged)."""
    snap = await snapshot(c)
    nodes = {_meta(n).get("name") or "": n for n in snap["nodes"]}
    ready_nodes = {name for name, n in nodes.items() if _ready(n) and not any(
        t.get("key") in _NODE_TAINTS for t in (n.get("spec") or {}).get("taints") or [])}
    out = [f"node {name} is not Ready" for name in sorted(set(nodes) - ready_nodes)]
    ours = [p for p in snap["pods"] if _meta(p).get("namespace") == NAMESPACE]
    active = [p for p in ours if (p.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed") and not _job_pod(p)]
    for d in snap["deployments"]:
        out += _deployment(d, snap, active, ready_nodes)
    for rs in snap["replicasets"]:
        if not any(r.get("controller") for r in _meta(rs).get("ownerReferences") or []):
            out += _replicaset(rs, active, ready_nodes)
    for s in snap["statefulsets"]:
        out += _statefulset(s, active, ready_nodes)
    for j in snap["jobs"]:
        out += _job(j, ours)
    endpoints = {_meta(e).get("name") or "": e for e in snap["endpoints"]}
    for s in snap["services"]:
        out += _service(s, endpoints, ours)
    out += [f"pod {_meta(p).get('namespace')}/{_meta(p).get('name')} is bound to missing node "
            f"{(p.get('spec') or {}).get('nodeName')}" for p in snap["pods"]
            if (p.get("spec") or {}).get("nodeName") and
            (p.get("spec") or {}).get("nodeName") not in nodes]
    out += _processes(ours, tracker.live())
    if not out:  # only a cluster that looks whole is worth probing
        targets = [t for t in workload.targets() if t[1] in ready_nodes]
        results = await asyncio.gather(*(workload.probe(session, *t, record=False)
                                         for t in targets))
        out += [f"probe of service {svc} through {node} failed"
                for (svc, node, _), ok in zip(targets, results, strict=True) if not ok]
    return out


def _job_pod(p: Obj) -> bool:
    return any(r.get("kind") == "Job" for r in _meta(p).get("ownerReferences") or [])
