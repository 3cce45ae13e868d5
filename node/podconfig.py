"""Which pods this node runs (the kubelet's pod config source for the apiserver): the pods
informer, watching only pods whose ``spec.nodeName`` is this node, feeds the pod workers.

Added or changed → ``workers.update(pod)``; deleted → ``workers.delete(uid)``.  A pod bound
elsewhere is never handed to a worker, whatever the watch delivers.  Once the first complete
list has been applied, :meth:`PodFeed.run` removes the sandboxes the runtime still has for pods
that no longer exist — pods deleted (or replaced on another node) while the agent was down or
cut off — so a returning node never keeps a second copy of a pod running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from control.client import Informer
from node.pods.manager import PodWorkers

__all__ = ["PodFeed"]

log = logging.getLogger("ketch.node.pods")


class PodFeed:
    """``on_gone(uid)`` is told of every pod that leaves (to drop what others keep for it)."""

    def __init__(self, pods: Informer, workers: PodWorkers, node_name: str, *,
                 on_gone: Callable[[str], None] = lambda uid: None) -> None:
        self.pods = pods
        self.workers = workers
        self.node_name = node_name
        self.on_gone = on_gone
        self.synced = asyncio.Event()
        self.refused = 0
        pods.add_handler(on_add=self._seen, on_update=lambda _old, new: self._seen(new),
                         on_delete=self._gone)

    def _seen(self, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        uid = (pod.get("metadata") or {}).get("uid", "")
        if node != self.node_name:
            self.refused += 1
            log.error("pod %s/%s is bound to %r, not to this node %s: not running it",
                      (pod.get("metadata") or {}).get("namespace"),
                      (pod.get("metadata") or {}).get("name"), node, self.node_name)
            if uid in self.workers.workers:
                self.workers.delete(uid)
            return
        self.workers.update(pod)

    def _gone(self, pod: dict[str, Any]) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        self.workers.delete(uid)
        self.on_gone(uid)

    async def run(self) -> None:
        """After the first list: clean up departed pods' sandboxes; then nothing more (the
        handlers do the rest)."""
        await self.pods.wait_synced()
        listed = [(p.get("metadata") or {}).get("uid", "") for p in self.pods.cache
                  if (p.get("spec") or {}).get("nodeName") == self.node_name]
        await self.workers.cleanup(listed)
        self.synced.set()
        log.info("node %s: %d pods bound here", self.node_name, len(listed))
