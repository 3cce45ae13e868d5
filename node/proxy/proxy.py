"""The service proxy (kube-proxy's job) of one node: every Service port reachable at
``ClusterIP:port`` and, for NodePort Services, at ``nodeIP:nodePort``, balanced over the ready
endpoints of the Service's EndpointSlices, re-programmed as they change.

It watches Services and EndpointSlices through shared informers; any change schedules one
reconcile a moment later (changes arriving together are applied together), which recomputes the
table (:func:`~.table.build_table`), opens listeners for new frontends, closes the ones that
went away and swaps the backend lists of the rest in place.  No root is needed on one machine:
ClusterIPs come from 127.0.0.0/8 (every 127.x address is local on Linux) and listeners share
ports with the other agents of the machine (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from control.client import Informer, InformerFactory
from control.client import resources as R

from .relay import Choice, TcpRelay, UdpRelay
from .table import Backend, Frontend, build_table

__all__ = ["ServiceProxy"]

log = logging.getLogger("ketch.node.proxy")

Key = tuple[str, int, str]


def _identity(port: int) -> int:
    return port


class ServiceProxy:
    """``node_ip``: where NodePorts listen; ``port_of`` maps a pod port to where the pod really
    listens on this host (the process runtime serves privileged ports higher when not root)."""

    def __init__(self, informers: InformerFactory, node_ip: str, *,
                 port_of: Callable[[int], int] = _identity, delay: float = 0.05) -> None:
        self.node_ip = node_ip
        self.port_of = port_of
        self.delay = delay
        self.services: Informer = informers.informer(R.SERVICES)
        self.slices: Informer = informers.informer(R.ENDPOINTSLICES)
        self._listeners: dict[Key, TcpRelay | UdpRelay] = {}
        self._choices: dict[Key, Choice] = {}
        self._dirty = asyncio.Event()
        self.syncs = 0
        self.bind_failures: dict[Key, str] = {}
        for inf in (self.services, self.slices):
            inf.add_handler(on_add=self._changed, on_update=self._updated,
                            on_delete=self._changed)

    def _changed(self, _obj: object) -> None:
        self._dirty.set()

    def _updated(self, old: object, new: object) -> None:
        if old is not new:
            self._dirty.set()

    @property
    def frontends(self) -> list[Key]:
        return sorted(self._listeners)

    async def run(self) -> None:
        """Reconcile on every change until cancelled; then close every listener."""
        try:
            await self.services.wait_synced()
            await self.slices.wait_synced()
            while True:
                await self.sync()
                await self._dirty.wait()
                await asyncio.sleep(self.delay)  # let changes that come together land together
                self._dirty.clear()
        finally:
            await self.close()

    async def sync(self) -> None:
        table = build_table(self.services.cache, self.slices.cache, self.node_ip)
        wanted: dict[Key, tuple[list[Backend], int]] = {}
        for fe, backends in table.items():
            wanted[(fe.ip, fe.port, fe.protocol)] = (backends, fe.affinity_seconds)
        for key in [k for k in self._listeners if k not in wanted]:
            await self._listeners.pop(key).close()
            self._choices.pop(key, None)
        for key, (backends, affinity) in wanted.items():
            choice = self._choices.get(key)
            if choice is None:
                choice = Choice(affinity)
            choice.update(backends, affinity)
            if key not in self._listeners and not await self._open(key, choice):
                continue
            self._choices[key] = choice
        self.syncs += 1

    async def _open(self, key: Key, choice: Choice) -> bool:
        ip, port, proto = key
        fe = Frontend(ip, port, proto, "", "")
        relay: TcpRelay | UdpRelay = TcpRelay(fe, choice, self.port_of) if proto == "TCP" \
            else UdpRelay(fe, choice, self.port_of)
        try:
            await relay.start()
        except OSError as e:
            if self.bind_failures.get(key) != str(e):
                log.warning("cannot serve %s:%d/%s: %s", ip, port, proto, e)
            self.bind_failures[key] = str(e)
            return False
        self.bind_failures.pop(key, None)
        self._listeners[key] = relay
        return True

    async def close(self) -> None:
        for relay in self._listeners.values():
            with contextlib.suppress(Exception):
                await relay.close()
        self._listeners.clear()
        self._choices.clear()
