"""What a ``--cluster`` chaos run sees of the cluster while it runs, for the checkers.

* :class:`RunTracker` reads every node's run record (``node.runtime.runrecord``) as it
  grows: the container processes alive now (for convergence: no orphan, none missing) and,
  at the end, every run as a :class:`~chaos.history.ProcessRun` — the truth of what ran.
* :class:`Observer` watches pods, ReplicaSets, Deployments, StatefulSets and Jobs of the
  workload's namespace and every Node through informers (as admin, straight to the
  apiservers, never through a fault proxy) and records each change as an
  :class:`~chaos.history.Observation` with the few fields the checkers read.
* :func:`read_writes` collects the controller-managers' and schedulers' write logs.

All three only record; judging is the checkers' (:mod:`chaos.checkers.cluster`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from control.api.clock import parse_time
from control.client import ApiClient, InformerFactory
from control.client import resources as R
from node.runtime import procfs, runrecord
from node.runtime.process_state import read_json

from .cluster_workload import NAMESPACE
from .components import Components
from .history import ComponentWrite, History, Observation, ProcessRun

__all__ = ["Observer", "RunTracker", "kill_leftovers", "read_writes", "resolve_surge"]

Obj = dict[str, Any]


class RunTracker:
    """The nodes' run records, read incrementally (call :meth:`poll`)."""

    def __init__(self, components: Components) -> None:
        self._components = components
        self._offsets: dict[str, int] = {}
        self.open: dict[tuple[str, str, int], Obj] = {}  # (node, container id, pid) -> start
        self.done: list[ProcessRun] = []

    def poll(self) -> None:
        for node in self._components.of("node"):
            path = str(self._components.run_record(node.name))
            lines, self._offsets[node.name] = runrecord.read(path,
                                                             self._offsets.get(node.name, 0))
            for line in lines:
                key = (line.get("node") or node.name, str(line.get("id")), int(line["pid"]))
                if line.get("event") == "start":
                    self.open[key] = line
                elif line.get("event") == "exit":
                    start = self.open.pop(key, None)
                    self.done.append(_run(start or line, line))

    def live(self) -> list[Obj]:
        """Start lines of the processes running now (no exit line, and alive in /proc)."""
        self.poll()
        return [s for s in self.open.values() if _alive(int(s["pid"]))]

    def finish(self) -> list[ProcessRun]:
        """Every run (those never ended: ``end`` None), ordered by start."""
        self.poll()
        runs = self.done + [_run(s, None) for s in self.open.values()]
        return sorted(runs, key=lambda r: r.start)


def kill_leftovers(tracker: RunTracker, components: Components) -> list[str]:
    """kill -9 every container process still alive after the agents were stopped (none, unless
    an agent is broken — the keep-replaced-pods proof, or lost track of one), each checked
    first against its shim's state file (pid and start time) or its run record's fork time;
    what was killed, for the run's notes.  Their runs keep no end: to the checkers they ran to
    the end of the run."""
    out = []
    for run in tracker.live():
        state = read_json(os.path.join(components.get(str(run["node"])).dir, "runtime", "pods",
                                       str(run["uid"]), "containers", str(run["id"]),
                                       "state.json")) or {}
        pid = int(str(run["pid"]))
        # its state file, or (a container its agent lost track of, whose pod directory is
        # gone) the fork time in the run record, identifies the process
        same = (procfs.is_same_process(pid, state.get("pid_start")) if state.get("pid") == pid
                else _forked_at(pid, float(run["mono"])))
        if same:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            out.append(f"container process {pid} ({run.get('namespace')}/{run.get('pod')} "
                       f"{run.get('container')} on {run.get('node')}) outlived its agent; killed")
    return out


def _forked_at(pid: int, mono: float) -> bool:
    """Whether ``pid`` is alive and was started within a second after ``mono`` (the run
    record's time, taken just before the fork): the same process, not a reused pid."""
    info = procfs.proc_info(pid)
    if info is None or info.state == "Z":
        return False
    boot_minus_mono = time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
    started = info.start / procfs.CLOCK_TICKS - boot_minus_mono
    return -0.05 <= started - mono <= 1.0


def _run(start: Obj, end: Obj | None) -> ProcessRun:
    return ProcessRun(node=str(start.get("node")), namespace=str(start.get("namespace")),
                      pod=str(start.get("pod")), uid=str(start.get("uid")),
                      container=str(start.get("container")), pid=int(start["pid"]),
                      start=float(start["mono"]) if start.get("event") == "start"
                      else float("-inf"),
                      end=None if end is None else float(end["mono"]),
                      code=None if end is None else end.get("code"),
                      labels=dict(start.get("labels") or {}))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def read_writes(components: Components) -> list[ComponentWrite]:
    """Every write the controller-managers and schedulers logged, ordered by invoke."""
    out = []
    for c in components.of("controller-manager") + components.of("scheduler"):
        path = components.write_log(c.name)
        if not path.exists():
            continue
        for raw in Path(path).read_text().splitlines():
            try:
                w = json.loads(raw)
            except ValueError:
                continue
            out.append(ComponentWrite(c.name, w["identity"], w.get("term"), w["method"],
                                      w["path"], int(w["code"]), float(w["invoke"]),
                                      float(w["complete"])))
    return sorted(out, key=lambda w: w.invoke)


# --- the observer ------------------------------------------------------------------------------


def resolve_surge(value: Any, replicas: int) -> int:
    """A RollingUpdate maxSurge as a number of pods (a percentage rounds up, as kube's)."""
    if value is None:
        value = "25%"
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * replicas / 100)
    return int(value)


def _owner(meta: Obj) -> Obj:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return {"kind": ref.get("kind"), "name": ref.get("name"), "uid": ref.get("uid")}
    return {}


def _compact(resource: str, obj: Obj) -> Obj:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, \
        obj.get("status") or {}
    base = {"uid": meta.get("uid"), "owner": _owner(meta),
            "deleting": bool(meta.get("deletionTimestamp"))}
    if resource == "pods":
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        containers = spec.get("containers") or [{}]
        return base | {"node": spec.get("nodeName"), "phase": status.get("phase"),
                       "ready": ready, "image": containers[0].get("image"),
                       "labels": meta.get("labels") or {}}
    if resource == "nodes":
        condition = next((c.get("status") for c in status.get("conditions") or []
                      if c.get("type") == "Ready"), "Unknown")
        return base | {"ready": condition, "taints": sorted(t.get("key", "") for t in
                                                        spec.get("taints") or [])}
    replicas = int(spec.get("replicas", 1) or 0)
    out = base | {"replicas": replicas, "generation": meta.get("generation")}
    if resource == "deployments":
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        out["surge"] = resolve_surge(rolling.get("maxSurge"), replicas)
    if resource == "jobs":
        out |= {"completions": spec.get("completions"), "succeeded": status.get("succeeded")}
    return out


class Observer:
    """Informers over the workload's objects and the Nodes; every change an Observation."""

    RESOURCES = (R.PODS, R.REPLICASETS, R.DEPLOYMENTS, R.STATEFULSETS, R.JOBS)

    def __init__(self, client: ApiClient, history: History) -> None:
        self.history = history
        self._client = client  # owned: closed by stop()
        self.factory = InformerFactory(client)
        self.informers = {str(res): self.factory.informer(res, namespace=NAMESPACE)
                          for res in self.RESOURCES}
        self.informers["nodes"] = self.factory.informer(R.NODES)
        for name, inf in self.informers.items():
            inf.add_handler(on_add=lambda o, n=name: self._seen(n, "ADDED", o),
                            on_update=lambda _o, o, n=name: self._seen(n, "MODIFIED", o),
                            on_delete=lambda o, n=name: self._seen(n, "DELETED", o))

    def _seen(self, resource: str, kind: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        try:
            rv = int(meta.get("resourceVersion") or 0)
        except ValueError:
            rv = 0
        now, kind_of = time.monotonic(), resource.split(".")[0]
        data = _compact(kind_of, obj)
        if self.informers[resource].replacing:
            data["relist"] = True  # its state now; changes since the last sight were missed
        created = parse_time(meta.get("creationTimestamp"))
        if created is not None:  # on this clock; whole seconds, so up to 1 s early
            data["created"] = round(created.timestamp() - (time.time() - now), 3)
        self.history.observations.append(Observation(
            now, kind_of, kind, rv, meta.get("namespace") or "",
            meta.get("name") or "", data))

    def start(self) -> None:
        self.factory.start()

    async def stop(self) -> None:
        await self.factory.stop()
        await self._client.close()
