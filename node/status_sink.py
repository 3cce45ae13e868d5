"""The pod status writer (the kubelet's status manager): the pod workers' :class:`StatusSink`
over the API.

``set_status`` never blocks: it keeps the newest status per pod and marks the pod dirty; a few
writer tasks drain the dirty pods, so a pod whose status changed ten times while the apiserver
was slow or away gets one write of the last one (batched per pod).  Each write is a merge patch
of ``pods/status`` carrying the pod's ``metadata.uid`` and the ``resourceVersion`` it was
computed against, so it fails with 409 if the pod changed meanwhile; the writer then reads the
pod again and retries at once.  What is written is the worker's status merged onto the API's
(``mergePodStatus``): the conditions the kubelet owns (Ready, ContainersReady, Initialized,
PodScheduled, PodReadyToStartContainers) come from the worker, every other condition stays as
the API has it, and a terminal phase never goes back.

``pod_terminated`` queues the kubelet's last act for a deleted pod: once its final status is
written, the pod object is deleted with grace period 0 and a UID precondition (a new pod of the
same name is never touched).  A pod that is gone (404, or another UID; 403 when the name now
belongs to a pod bound to another node) needs nothing more.
Transient failures (no apiserver, 5xx, 429) are retried with back-off and never lost while the
agent runs; statuses of pods the API refuses (403, 422) are dropped with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import Clock
from control.api.errors import APIError, BadRequest, Conflict, Forbidden, Invalid, NotFound
from control.client import ApiClient, Informer
from control.client import resources as R
from control.client.ratelimit import ItemBackoff
from node.pods.status import KUBELET_CONDITIONS, TERMINAL

__all__ = ["PodStatusWriter", "merge_status"]

log = logging.getLogger("ketch.node.status")

_CONFLICT_RETRIES = 3


def merge_status(api: Mapping[str, Any], ours: Mapping[str, Any],
                 owned: Collection[str] = ()) -> dict[str, Any]:
    """``ours`` onto ``api``: conditions of ``KUBELET_CONDITIONS`` and ``owned`` types from
    ours, the rest from the API; a terminal phase in the API stays."""
    mine = {*KUBELET_CONDITIONS, *owned}
    merged = {**api, **ours}
    merged["conditions"] = [c for c in api.get("conditions") or []
                            if c.get("type") not in mine] + \
        [c for c in ours.get("conditions") or [] if c.get("type") in mine]
    if api.get("phase") in TERMINAL and ours.get("phase") not in TERMINAL:
        merged["phase"] = api["phase"]
    return merged


@dataclass
class _Pending:
    namespace: str
    name: str
    uid: str
    status: dict[str, Any] | None = None
    owned: tuple[str, ...] = ()
    version: int = 0
    delete: bool = False
    written: dict[str, Any] | None = None  # the pod as our last write returned it


def _rv(pod: Mapping[str, Any] | None) -> int:
    try:
        return int(((pod or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class _Queue:
    items: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    queued: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)
    again: set[str] = field(default_factory=set)


class PodStatusWriter:
    """Writes the statuses of the pods ``pods`` (the node's pod informer) holds."""

    def __init__(self, client: ApiClient, pods: Informer, *, clock: Clock, writers: int = 8,
                 retry_initial: float = 0.5, retry_cap: float = 10.0) -> None:
        self.client = client
        self.pods = pods
        self.clock = clock
        self.writers = writers
        self.backoff = ItemBackoff(retry_initial, retry_cap)
        self.writes = 0
        self.conflicts = 0
        self._pending: dict[str, _Pending] = {}
        self._q = _Queue()
        self._retry: dict[str, float] = {}
        self._retry_wake = asyncio.Event()
        self._progress = asyncio.Event()  # set each time a writer finishes a pod

    # --- the workers' side (StatusSink) -----------------------------------------------------

    def set_status(self, pod: Mapping[str, Any], status: dict[str, Any], *,
                   owned: tuple[str, ...] = ()) -> None:
        """The pod's newest status; ``owned``: condition types beyond the kubelet's that this
        status sets (DisruptionTarget on a node shutdown)."""
        p = self._entry(pod)
        p.status, p.owned, p.version = status, owned, p.version + 1
        self._mark(p.uid)

    def pod_terminated(self, pod: Mapping[str, Any]) -> None:
        p = self._entry(pod)
        p.delete = True
        self._mark(p.uid)

    def _entry(self, pod: Mapping[str, Any]) -> _Pending:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        p = self._pending.get(uid)
        if p is None:
            p = self._pending[uid] = _Pending(str(meta.get("namespace") or ""),
                                              str(meta.get("name") or ""), uid)
        return p

    def _mark(self, uid: str) -> None:
        if uid in self._q.busy:
            self._q.again.add(uid)
        elif uid not in self._q.queued:
            self._q.queued.add(uid)
            self._q.items.put_nowait(uid)

    # --- the writer tasks --------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Pods with something not yet written."""
        return sum(1 for p in self._pending.values() if p.status is not None or p.delete)

    async def flush(self) -> None:
        """Wait until nothing is pending, retrying failed writes at once (for shutdown;
        bound it with a timeout)."""
        while self.pending:
            self._progress.clear()
            for uid in list(self._retry):
                self._retry[uid] = 0.0
            self._retry_wake.set()
            await self._progress.wait()

    async def run(self) -> None:
        """The writers and the retry timer, until cancelled."""
        tasks = [asyncio.create_task(self._writer(), name=f"pod-status-writer-{i}")
                 for i in range(self.writers)]
        tasks.append(asyncio.create_task(self._retries(), name="pod-status-retries"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    async def _writer(self) -> None:
        while True:
            uid = await self._q.items.get()
            self._q.queued.discard(uid)
            self._q.busy.add(uid)
            try:
                done = await self._sync(uid)
            except Exception:  # a bug must not stop the writer
                log.exception("writing the status of pod %s failed", uid)
                done = False
            finally:
                self._q.busy.discard(uid)
            if not done:
                self._retry[uid] = self.clock.monotonic() + self.backoff.when(uid)
                self._retry_wake.set()
            else:
                self.backoff.forget(uid)
                if uid in self._q.again:
                    self._q.again.discard(uid)
                    self._mark(uid)
            self._progress.set()

    async def _retries(self) -> None:
        while True:
            self._retry_wake.clear()
            now = self.clock.monotonic()
            for uid, due in list(self._retry.items()):
                if due <= now:
                    del self._retry[uid]
                    self._mark(uid)
            if not self._retry:
                await self._retry_wake.wait()
                continue
            wait = max(0.0, min(self._retry.values()) - now)
            sleeper = asyncio.ensure_future(self.clock.sleep(wait))
            waker = asyncio.ensure_future(self._retry_wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()

    # --- one pod -----------------------------------------------------------------------------

    async def _sync(self, uid: str) -> bool:
        """Write what is pending for ``uid``; True when nothing is left to retry."""
        p = self._pending.get(uid)
        if p is None:
            return True
        try:
            if p.status is not None:
                try:
                    if not await self._write(p):
                        return False
                except (Forbidden, Invalid, BadRequest) as e:
                    log.error("pod %s/%s: status refused, dropped: %s", p.namespace, p.name, e)
                    p.status = None
            if p.delete and p.status is None:
                await self._delete(p)
        except NotFound:
            self._pending.pop(uid, None)
        except APIError as e:
            log.info("pod %s/%s: status not written yet (%s); will retry", p.namespace,
                     p.name, e)
            return False
        return True

    def forget(self, uid: str) -> None:
        """The pod is gone from the API: drop what is kept for it."""
        self._pending.pop(uid, None)
        self._retry.pop(uid, None)

    async def _write(self, p: _Pending) -> bool:
        version, status = p.version, p.status
        assert status is not None
        pod = self._latest(p)
        for attempt in range(_CONFLICT_RETRIES + 1):
            if pod is None or (pod.get("metadata") or {}).get("uid") != p.uid:
                pod = await self.client.get(R.PODS, p.name, p.namespace)
                if (pod.get("metadata") or {}).get("uid") != p.uid:
                    raise NotFound("pods", p.name)  # another pod of that name now
            api = pod.get("status") or {}
            merged = merge_status(api, status, p.owned)
            if merged == api:
                break
            try:
                p.written = await self.client.patch(R.PODS, p.name, {
                    "metadata": {"uid": p.uid,
                                 "resourceVersion": pod["metadata"]["resourceVersion"]},
                    "status": merged}, p.namespace, subresource="status")
                self.writes += 1
                break
            except Conflict:
                self.conflicts += 1
                pod = None
                if attempt == _CONFLICT_RETRIES:
                    return False
        if p.version == version:
            p.status = None
        return True

    def _latest(self, p: _Pending) -> dict[str, Any] | None:
        cached = self.pods.cache.get_by(p.namespace, p.name)
        if cached is not None and (cached.get("metadata") or {}).get("uid") != p.uid:
            cached = None
        return p.written if _rv(p.written) > _rv(cached) else cached

    async def _delete(self, p: _Pending) -> None:
        try:
            await self.client.delete(R.PODS, p.name, p.namespace, grace_period_seconds=0,
                                     preconditions={"uid": p.uid})
        except Conflict:
            pass  # another pod of that name: ours is gone
        except Forbidden as e:
            # NodeRestriction lets a node delete only pods bound to it, and spec.nodeName never
            # changes: the pod of that name now is another node's, so ours is gone too.
            log.info("pod %s/%s: gone (the name is another node's pod now): %s", p.namespace,
                     p.name, e)
        self._pending.pop(p.uid, None)
