"""The node status loop (the kubelet's ``syncNodeStatus``): every 10 s the agent computes its
Node's status — conditions from the machine's readings and its own health, addresses,
capacity, the streaming server's port — and posts it when it differs from what the API has
(heartbeat times aside) or when 5 minutes have passed since the last post.

It compares with the Node as its informer last saw it, so a condition someone else changed
(the node lifecycle controller marking it Unknown while the agent was away) is corrected at the
next tick, not 5 minutes later.  Posts are strategic-merge patches of ``nodes/NAME/status``
(conditions and addresses merge by ``type``, so conditions other components own survive), as
the kubelet's ``PatchNodeStatus``.  Each condition that changes is told as the kubelet's Normal
event (``NodeReady``, ``NodeHasSufficientMemory`` …) on the Node.  A Node that was deleted is
registered again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from control.api.clock import Clock
from control.api.errors import APIError, NotFound
from control.client import ApiClient, Informer
from control.client import resources as R

from .conditions import Transition, changed, conditions, node_object, node_status, transitions
from .config import AgentConfig
from .machine import MachineFacts, Readings

__all__ = ["NodeEvents", "NodeStatusUpdater"]

log = logging.getLogger("ketch.node.status")


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class NodeEvents(Protocol):
    def event(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None: ...


class NodeStatusUpdater:
    """``not_ready()`` lists why the node is not ready (empty: Ready); ``readings()`` reads
    the machine; ``port()`` is the streaming server's port; ``reregister(node)`` registers
    the Node again after it was deleted."""

    def __init__(self, client: ApiClient, nodes: Informer, config: AgentConfig,
                 facts: MachineFacts, *, clock: Clock, events: NodeEvents,
                 port: Callable[[], int], not_ready: Callable[[], Sequence[str]],
                 readings: Callable[[], Readings],
                 reregister: Callable[[dict[str, Any]], Awaitable[Any]] | None = None) -> None:
        self.client = client
        self.nodes = nodes
        self.config = config
        self.facts = facts
        self.clock = clock
        self.events = events
        self.port = port
        self.not_ready = not_ready
        self.readings = readings
        self.reregister = reregister
        self.last_post: float | None = None
        self.posts = 0
        self._lock = asyncio.Lock()
        self._posted: dict[str, Any] | None = None  # the Node as our last post returned it

    @property
    def ref(self) -> dict[str, Any]:
        """The Node as events name it: the kubelet uses the node's name as its uid."""
        return {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": self.config.name, "uid": self.config.name}}

    def compute(self, previous: Sequence[dict[str, Any]]) -> tuple[dict[str, Any],
                                                                    list[Transition]]:
        conds = conditions(self.readings(), list(self.not_ready()), previous, self.clock.now())
        status = node_status(self.config, self.facts, port=self.port(), conds=conds)
        return status, transitions(previous, conds)

    def initial_node(self) -> dict[str, Any]:
        """The Node to register, its conditions' events recorded (the kubelet's setters run
        on the initial node too)."""
        status, moved = self.compute([])
        self._record(moved)
        return node_object(self.config, self.facts, status)

    async def run(self) -> None:
        """Sync every ``status_compute_seconds`` until cancelled; never raises for the
        apiserver's failures."""
        while True:
            try:
                await self.sync()
            except APIError as e:
                log.warning("node %s: posting status failed: %s", self.config.name, e)
            await self.clock.sleep(self.config.status_compute_seconds)

    async def sync(self, *, force: bool = False) -> bool:
        """Post the status if it changed, is due, or ``force``; whether it posted.  One at a
        time: the loop's tick and an immediate sync never both post (nor both record the
        same transition)."""
        async with self._lock:
            return await self._sync(force)

    async def _sync(self, force: bool) -> bool:
        node = self.nodes.cache.get(self.config.name)
        if node is not None and self._posted is not None and \
                _rv(self._posted) > _rv(node) and _uid(self._posted) == _uid(node):
            node = self._posted  # the informer has not seen our last post yet
        if node is None:  # not seen yet (or deleted): ask
            try:
                node = await self.client.get(R.NODES, self.config.name)
            except NotFound:
                return await self._gone()
        old = node.get("status") or {}
        status, moved = self.compute(old.get("conditions") or [])
        due = self.last_post is None or \
            self.clock.monotonic() - self.last_post >= self.config.status_report_seconds
        if not (force or due or changed(old, status)):
            return False
        try:
            self._posted = await self.client.patch(R.NODES, self.config.name,
                                                   {"status": status}, patch_type="strategic",
                                                   subresource="status")
        except NotFound:
            return await self._gone()
        self.last_post = self.clock.monotonic()
        self.posts += 1
        self._record(moved)
        return True

    async def _gone(self) -> bool:
        if self.reregister is None:
            return False
        log.warning("node %s is not in the API any more; registering it again",
                    self.config.name)
        await self.reregister(self.initial_node())
        self.last_post = self.clock.monotonic()
        return True

    def _record(self, moved: Sequence[Transition]) -> None:
        for t in moved:
            self.events.event(self.ref, "Normal", t.event,
                              f"Node {self.config.name} status is now: {t.event}")
