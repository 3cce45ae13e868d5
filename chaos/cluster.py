"""The cluster under test: real replica processes (launched exactly as ``ketch store up`` does)
with a fault-injecting proxy on every Raft peer link and every client link.

Wiring.  pysyncobj opens one connection per pair of replicas, dialled by the one whose Raft
address sorts higher, so each pair's traffic crosses exactly one :class:`LinkProxy` — the
dialler is configured (``raft_routes``) to reach the other through it.  Replica ports are five
digits from 61000 up (above Linux's ephemeral range, which a busy machine's outgoing
connections fill) and proxy ports five digits from 20000 to 32000, which keeps every route
sorting below its dialler, as pysyncobj's rule requires.  Clients of the chaos workload reach each
replica through its own client proxy; observers (status polls, final reads) go direct.
Other store clients that must be cut off on their own (each apiserver of an ``--api`` run)
get a private set of client-link proxies from :meth:`ChaosCluster.add_client_links`.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.client import StoreClient
from store.launch import LocalCluster

from .proxy import LinkProxy

__all__ = ["ChaosCluster", "PeerLink"]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_block(rng: random.Random, lo: int, hi: int, n: int) -> int:
    for _ in range(200):
        base = rng.randrange(lo, hi - n)
        if all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports in [{lo}, {hi})")


@dataclass(frozen=True)
class PeerLink:
    """The one connection between ``dialler`` and ``target`` (dialler's address sorts higher).
    The proxy's forward direction carries dialler→target bytes, backward target→dialler."""

    dialler: str
    target: str
    proxy: LinkProxy

    def direction(self, sender: str) -> str:
        return "forward" if sender == self.dialler else "backward"


class ChaosCluster:
    """Owns a :class:`LocalCluster` and the proxies in front of it.

    ``overrides`` are ReplicaConfig fields for every replica (e.g. ``raft_fixes=False``, or a
    sabotage switch in ``extra``).  ``progress`` receives one line per notable step."""

    def __init__(
        self,
        dir: Path,
        *,
        replicas: int = 3,
        seed: int = 0,
        overrides: dict[str, Any] | None = None,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.dir = dir
        self._rng = random.Random(seed)
        self._n = replicas
        self._overrides = overrides or {}
        self.progress = progress
        self.store: LocalCluster | None = None
        self.peer_links: list[PeerLink] = []
        self.client_proxies: dict[str, LinkProxy] = {}
        # owner (e.g. an apiserver) -> member -> that owner's own client-link proxy
        self.owner_proxies: dict[str, dict[str, LinkProxy]] = {}
        self.api: Any = None  # the run's chaos.apiserver.ApiServers, when it has apiservers
        self.components: Any = None  # a --cluster run's chaos.components.Components
        # proxies on links that are not the store's (component <-> apiserver): healed and
        # stopped with the others
        self.extra_proxies: list[LinkProxy] = []

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        # above Linux's ephemeral range (32768-60999), where every outgoing connection of
        # a busy machine takes its local port
        base = _free_block(self._rng, 61000, 65500, 2 * self._n)
        store = LocalCluster(self.dir, replicas=self._n, base_port=base)
        store.prepare()
        self.store = store
        proxy_base = _free_block(self._rng, 20000, 32000, self._n * self._n + self._n)
        ports = iter(range(proxy_base, proxy_base + self._n * self._n + self._n))
        members = store.members
        routes: dict[str, dict[str, str]] = {m.name: {} for m in members}
        for a in members:
            for b in members:
                if a.raft > b.raft:  # a dials b
                    host, port = b.raft.rsplit(":", 1)
                    proxy = LinkProxy(f"{a.name}->{b.name}", (host, int(port)),
                                      listen_port=next(ports))
                    await proxy.start()
                    routes[a.name][b.name] = proxy.address
                    self.peer_links.append(PeerLink(a.name, b.name, proxy))
        for m in members:
            host, port = m.client.removeprefix("https://").rsplit(":", 1)
            proxy = LinkProxy(f"client->{m.name}", (host, int(port)), listen_port=next(ports))
            await proxy.start()
            self.client_proxies[m.name] = proxy
            store.configure(m.name, raft_routes=routes[m.name], **self._overrides)
        await asyncio.to_thread(store.up, self.progress)

    async def stop(self) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.down, lambda _: None)
        for p in self.proxies():
            await p.stop()

    # --- views ----------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        assert self.store is not None
        return self.store.names

    def proxies(self) -> list[LinkProxy]:
        owned = [p for links in self.owner_proxies.values() for p in links.values()]
        return ([link.proxy for link in self.peer_links] + list(self.client_proxies.values())
                + owned + self.extra_proxies)

    def client_links(self) -> list[LinkProxy]:
        """Every client link: the workload's and every owner's (see add_client_links)."""
        owned = [p for links in self.owner_proxies.values() for p in links.values()]
        return list(self.client_proxies.values()) + owned

    async def add_client_links(self, owner: str) -> list[str]:
        """Open one client-link proxy per replica for ``owner`` alone (so a fault can cut that
        client from the store and nothing else) and return the store URLs to give it."""
        assert self.store is not None
        links: dict[str, LinkProxy] = {}
        for m in self.store.members:
            host, port = m.client.removeprefix("https://").rsplit(":", 1)
            proxy = LinkProxy(f"{owner}->{m.name}", (host, int(port)))
            await proxy.start()
            links[m.name] = proxy
        self.owner_proxies[owner] = links
        return [f"https://{p.address}" for p in links.values()]

    def proxied_client(self, *, only: str | None = None, **kwargs: Any) -> StoreClient:
        """A client whose every request crosses the client proxies (workload clients);
        ``only``: through that member alone (it forwards writes to the leader)."""
        assert self.store is not None
        urls = [f"https://{p.address}" for name, p in self.client_proxies.items()
                if only is None or name == only]
        return StoreClient(urls, tls=self.store.client_tls, **kwargs)

    def direct_client(self, **kwargs: Any) -> StoreClient:
        """A client that bypasses the proxies (observers and final checks)."""
        assert self.store is not None
        return StoreClient(self.store.client_urls, tls=self.store.client_tls, **kwargs)

    def links_between(self, a: str, b: str) -> PeerLink:
        for link in self.peer_links:
            if {link.dialler, link.target} == {a, b}:
                return link
        raise KeyError(f"no link between {a} and {b}")

    async def leader(self) -> str | None:
        assert self.store is not None
        return await asyncio.to_thread(self.store.leader)

    # --- network faults ---------------------------------------------------------------------------

    def block(self, sender: str, receiver: str) -> None:
        """``receiver`` stops hearing ``sender`` on their peer link (one direction)."""
        link = self.links_between(sender, receiver)
        link.proxy.set(**{link.direction(sender): "drop"})

    def partition(self, *groups: list[str]) -> None:
        """No peer traffic between members of different groups (both directions)."""
        where = {m: i for i, g in enumerate(groups) for m in g}
        for link in self.peer_links:
            if where.get(link.dialler) != where.get(link.target):
                link.proxy.set(forward="drop", backward="drop")

    def heal_network(self) -> None:
        for p in self.proxies():
            p.heal()
