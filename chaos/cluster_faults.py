"""Faults of the whole cluster (``ketch chaos run --cluster``), beside the store's and the
apiservers' (:mod:`chaos.faults`): each acts on a real process or a real link of a
controller-manager, scheduler, node agent or pod.

* ``kill-controller-manager`` / ``kill-scheduler`` — kill -9 the one that leads (asked on its
  /leader); heal starts it again.
* ``pause-controller-manager`` — SIGSTOP the leading controller-manager for longer than its
  Lease (the zombie leader: a standby takes over, and the old one must not act on waking);
  heal sends SIGCONT.
  The workload changes something right after the heal (``wake_actions``), so the old leader
  wakes to work it must leave alone.
* ``partition-controller-manager`` — every byte between the leading controller-manager and
  the apiservers dropped; heal lets them through.
* ``lag-controller-manager`` — the leading controller-manager's watches lag 2 s while
  its requests are answered at once (``LagStreams`` on its links): its caches do not yet show
  its own creations, which only its expectations keep it from creating again.
* ``kill-node`` — kill -9 a node agent (its pods' processes live on, outside it); heal starts
  it again, and it must re-adopt them.  Sometimes held past the node-monitor grace period.
* ``partition-node`` — a node agent cut from the apiservers both ways (and the apiservers from
  its streaming server) for longer than the grace period: its Node must go Unknown, its pods
  must keep running, and what is evicted meanwhile is replaced elsewhere, except StatefulSet
  pods, which wait for the agent.
* ``kill-pod`` — kill -9 a running container process of the workload (its pod's agent must
  restart it).

``hold(rng)`` says how long the runner keeps each fault before healing it.
"""

from __future__ import annotations

import os
import random
import signal

from node.runtime import procfs
from node.runtime.process_state import read_json

from .cluster import ChaosCluster
from .cluster_workload import NAMESPACE
from .components import Components, Timings
from .proxy import LagStreams

__all__ = ["CLUSTER_FAULTS"]


def _components(cluster: ChaosCluster) -> Components:
    assert cluster.components is not None
    comps: Components = cluster.components
    return comps


class _KillLeader:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"kill-{kind}"
        self._victim: str | None = None

    def hold(self, rng: random.Random, t: Timings) -> float:
        return rng.uniform(1.0, 3.0)

    async def available(self, cluster: ChaosCluster) -> bool:
        return cluster.components is not None and \
            await _components(cluster).leader(self.kind) is not None

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        comps = _components(cluster)
        victim = await comps.leader(self.kind)
        assert victim is not None
        await comps.kill(victim, signal.SIGKILL)
        self._victim = victim
        return victim

    async def heal(self, cluster: ChaosCluster) -> None:
        if self._victim is not None:
            _components(cluster).start(self._victim)
            self._victim = None


class _PauseLeader(_KillLeader):
    def __init__(self) -> None:
        super().__init__("controller-manager")
        self.name = "pause-controller-manager"

    wake_actions = 1  # one change right after the heal: the zombie wakes to work

    def hold(self, rng: random.Random, t: Timings) -> float:
        return t.leader_lease + rng.uniform(1.0, 4.0)  # longer than its Lease

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        comps = _components(cluster)
        victim = await comps.leader(self.kind)
        assert victim is not None
        comps.send(victim, signal.SIGSTOP)
        self._victim = victim
        return victim

    async def heal(self, cluster: ChaosCluster) -> None:
        if self._victim is not None:
            _components(cluster).send(self._victim, signal.SIGCONT)
            self._victim = None


class _PartitionLeader(_KillLeader):
    def __init__(self) -> None:
        super().__init__("controller-manager")
        self.name = "partition-controller-manager"

    def hold(self, rng: random.Random, t: Timings) -> float:
        return rng.uniform(2.0, t.leader_lease + 4.0)  # sometimes past its Lease

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        comps = _components(cluster)
        victim = await comps.leader(self.kind)
        assert victim is not None
        comps.cut_off(victim)
        return victim

    async def heal(self, cluster: ChaosCluster) -> None:
        cluster.heal_network()


class _LagLeader(_KillLeader):
    def __init__(self) -> None:
        super().__init__("controller-manager")
        self.name = "lag-controller-manager"
        self._lag = 2.0

    def hold(self, rng: random.Random, t: Timings) -> float:
        # the workload acts within the first 3 s; what the controllers create in answer
        # (two hops: Deployment, then ReplicaSet) must still be lagging
        return 3.0 + 2 * self._lag + rng.uniform(0.5, 1.5)

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        comps = _components(cluster)
        victim = await comps.leader(self.kind)
        assert victim is not None
        for p in comps.get(victim).links.values():
            p.set(backward=LagStreams(self._lag))
        return f"{victim} (watches {self._lag:.1f} s late)"

    async def heal(self, cluster: ChaosCluster) -> None:
        cluster.heal_network()


class _KillNode:
    name = "kill-node"

    def __init__(self) -> None:
        self._victim: str | None = None

    def hold(self, rng: random.Random, t: Timings) -> float:
        # mostly a quick restart; a third of the time past the grace period (Node Unknown)
        if rng.random() < 1 / 3:
            return t.node_monitor_grace + rng.uniform(2.0, 8.0)
        return rng.uniform(1.0, 4.0)

    async def available(self, cluster: ChaosCluster) -> bool:
        return cluster.components is not None and any(
            c.running for c in _components(cluster).of("node"))

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        comps = _components(cluster)
        victim = rng.choice([c.name for c in comps.of("node") if c.running])
        await comps.kill(victim, signal.SIGKILL)
        self._victim = victim
        return victim

    async def heal(self, cluster: ChaosCluster) -> None:
        if self._victim is not None:
            _components(cluster).start(self._victim)
            self._victim = None


class _PartitionNode(_KillNode):
    name = "partition-node"

    def hold(self, rng: random.Random, t: Timings) -> float:
        return t.node_monitor_grace + rng.uniform(4.0, 10.0)

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        comps = _components(cluster)
        victim = rng.choice([c.name for c in comps.of("node")])
        comps.cut_off(victim)
        return victim

    async def heal(self, cluster: ChaosCluster) -> None:
        cluster.heal_network()


class _KillPod:
    """kill -9 one container process of the workload, found in its node's run record and
    checked against the shim's state file (pid and start time) before the signal."""

    name = "kill-pod"

    def hold(self, rng: random.Random, t: Timings) -> float:
        return rng.uniform(0.5, 1.5)

    def _candidates(self, cluster: ChaosCluster) -> list[dict[str, object]]:
        comps = _components(cluster)
        if comps.runs is None:
            return []
        return [r for r in comps.runs.live() if r.get("namespace") == NAMESPACE]

    async def available(self, cluster: ChaosCluster) -> bool:
        return cluster.components is not None and bool(self._candidates(cluster))

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        comps = _components(cluster)
        run = rng.choice(self._candidates(cluster))
        state = read_json(os.path.join(comps.get(str(run["node"])).dir, "runtime", "pods",
                                       str(run["uid"]), "containers", str(run["id"]),
                                       "state.json")) or {}
        pid = int(str(run["pid"]))
        what = f"{run['pod']}/{run['container']} pid {pid} on {run['node']}"
        if state.get("pid") != pid or not procfs.is_same_process(pid, state.get("pid_start")):
            return f"{what} (already gone)"
        os.kill(pid, signal.SIGKILL)
        return what

    async def heal(self, cluster: ChaosCluster) -> None:
        return None


def CLUSTER_FAULTS() -> dict[str, object]:
    faults: list[object] = [
        _KillLeader("controller-manager"), _KillLeader("scheduler"), _PauseLeader(),
        _PartitionLeader(), _LagLeader(), _KillNode(), _PartitionNode(), _KillPod()]
    return {f.name: f for f in faults}  # type: ignore[attr-defined]
