"""Faults as objects: ``name``, ``available(cluster)``, ``inject(cluster)``, ``heal(cluster)``.

Every fault acts on real processes or real connections: kill -9 and restart, SIGSTOP/SIGCONT,
proxies that drop or delay the bytes of one direction of a link.  ``inject`` returns a short
description of what it did (the target), ``heal`` undoes it (restarts what it killed, resumes
what it paused, lets bytes through again).  A fault is only chosen when it is available, e.g.
"kill the leader" needs a leader, and the apiserver faults need an ``--api`` run.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from typing import Protocol

from .cluster import ChaosCluster
from .proxy import DROP, Delay

__all__ = ["FAULTS", "Fault", "fault_names"]


class Fault(Protocol):
    name: str

    async def available(self, cluster: ChaosCluster) -> bool: ...

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str: ...

    async def heal(self, cluster: ChaosCluster) -> None: ...


async def _leader(cluster: ChaosCluster) -> str | None:
    return await cluster.leader()


class _KillOne:
    """kill -9 one replica (the leader or a follower); heal restarts it."""

    def __init__(self, name: str, *, leader: bool) -> None:
        self.name = name
        self._leader = leader
        self._victim: str | None = None

    async def available(self, cluster: ChaosCluster) -> bool:
        return await _leader(cluster) is not None

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        leader = await _leader(cluster)
        if self._leader:
            victim = leader
        else:
            victim = rng.choice([n for n in cluster.names if n != leader])
        assert victim is not None and cluster.store is not None
        await asyncio.to_thread(cluster.store.kill, victim, signal.SIGKILL)
        self._victim = victim
        return victim

    async def heal(self, cluster: ChaosCluster) -> None:
        assert cluster.store is not None
        if self._victim is not None:
            await asyncio.to_thread(cluster.store.start, self._victim)
            self._victim = None


class _KillAll:
    name = "kill-all"

    async def available(self, cluster: ChaosCluster) -> bool:
        return True

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        store = cluster.store
        assert store is not None
        pids = [p for p in (store.pid(n) for n in cluster.names) if p is not None]
        for pid in pids:  # all at once, like a power cut
            os.kill(pid, signal.SIGKILL)
        deadline = asyncio.get_running_loop().time() + 10
        while any(store.pid(n) is not None for n in cluster.names):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("replicas still running 10 s after SIGKILL")
            await asyncio.sleep(0.02)
        return "all"

    async def heal(self, cluster: ChaosCluster) -> None:
        assert cluster.store is not None
        for n in cluster.names:
            await asyncio.to_thread(cluster.store.start, n)


class _PauseLeader:
    """SIGSTOP the leader for longer than an election timeout; heal sends SIGCONT."""

    name = "pause-leader"

    def __init__(self) -> None:
        self._pid: int | None = None

    async def available(self, cluster: ChaosCluster) -> bool:
        return await _leader(cluster) is not None

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        leader = await _leader(cluster)
        assert leader is not None and cluster.store is not None
        self._pid = cluster.store.pid(leader)
        if self._pid is not None:
            os.kill(self._pid, signal.SIGSTOP)
        return leader

    async def heal(self, cluster: ChaosCluster) -> None:
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self._pid = None


class _Network:
    """A network fault: a function that sets proxies, healed by letting everything through."""

    def __init__(self, name: str, needs_leader: bool = True) -> None:
        self.name = name
        self._needs_leader = needs_leader

    async def available(self, cluster: ChaosCluster) -> bool:
        return not self._needs_leader or await _leader(cluster) is not None

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        leader = await _leader(cluster)
        names = cluster.names
        others = [n for n in names if n != leader]
        if self.name == "isolate-leader":
            assert leader is not None
            cluster.partition([leader], others)
            return leader
        if self.name == "split-minority-majority":
            minority = [rng.choice(names)]
            cluster.partition(minority, [n for n in names if n not in minority])
            return f"{minority[0]} | {','.join(n for n in names if n not in minority)}"
        if self.name == "asymmetric":
            assert leader is not None
            # The leader hears everyone; nobody hears the leader.
            for n in others:
                cluster.block(leader, n)
            return f"{leader} unheard"
        if self.name == "slow-links":
            delay = Delay(rng.choice((0.05, 0.1, 0.2)))
            for link in cluster.peer_links:
                link.proxy.set(forward=delay, backward=delay)
            return f"all peer links +{delay.seconds * 1000:.0f} ms"
        if self.name == "client-cut":  # the apiservers' store links too, in an --api run
            for p in cluster.client_links():
                p.set(forward="drop", backward="drop")
            return "all client links"
        raise ValueError(self.name)

    async def heal(self, cluster: ChaosCluster) -> None:
        cluster.heal_network()


class _KillApiserver:
    """kill -9 one apiserver of an ``--api`` run; heal starts it again (without waiting for it
    to be ready: its clients see the restart as it happens)."""

    name = "kill-apiserver"

    def __init__(self) -> None:
        self._victim: str | None = None

    async def available(self, cluster: ChaosCluster) -> bool:
        return cluster.api is not None and any(s.running for s in cluster.api.servers)

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        victim = rng.choice([s.name for s in cluster.api.servers if s.running])
        await cluster.api.kill(victim, signal.SIGKILL)
        self._victim = victim
        return str(victim)

    async def heal(self, cluster: ChaosCluster) -> None:
        if self._victim is not None:
            cluster.api.start(self._victim)
            self._victim = None


class _CutApiserverStore:
    """One apiserver's client links to every replica drop all bytes both ways (its clients
    still reach it; it cannot reach the store); heal lets everything through again."""

    name = "cut-apiserver-store"

    async def available(self, cluster: ChaosCluster) -> bool:
        return cluster.api is not None

    async def inject(self, cluster: ChaosCluster, rng: random.Random) -> str:
        victim = rng.choice(cluster.api.names)
        for p in cluster.owner_proxies[victim].values():
            p.set(forward=DROP, backward=DROP)
        return str(victim)

    async def heal(self, cluster: ChaosCluster) -> None:
        cluster.heal_network()


def _all() -> dict[str, Fault]:
    faults: list[Fault] = [
        _KillOne("kill-leader", leader=True),
        _KillOne("kill-follower", leader=False),
        _KillAll(),
        _PauseLeader(),
        _Network("isolate-leader"),
        _Network("split-minority-majority", needs_leader=False),
        _Network("asymmetric"),
        _Network("slow-links", needs_leader=False),
        _Network("client-cut", needs_leader=False),
        _KillApiserver(),
        _CutApiserverStore(),
    ]
    return {f.name: f for f in faults}


FAULTS = _all


def fault_names() -> list[str]:
    return list(_all())
