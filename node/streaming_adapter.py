"""The streaming server's :class:`~node.streaming.StreamHandler` over this node's pod workers
and runtime: which container a request means comes from the pod's status as its worker last
computed it (:mod:`node.pods.lookup`, the kubelet's rules and messages), the work from the
runtime.

A pod this node does not run (another node's, a deleted one, another pod of the same name) is
:class:`~node.streaming.PodNotFound`; a container not in the pod's spec ``ContainerNotFound``;
exec or attach to a container that is not running ``ContainerNotRunning``; a log that cannot
be shown ``LogsUnavailable`` with the kubelet's words.  The adapter exists before the runtime
does (the streaming server starts first, so its port can go into the Node's status); until
:meth:`RuntimeStreams.bind` every pod is unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import cast

from control.api.streamproto.summary import ContainerStats, PodStats, Usage
from node.pods.lookup import LogTargetError, log_container_id, running_container_id
from node.pods.manager import PodWorkers
from node.pods.worker import PodWorker
from node.runtime.api import ContainerNotFound as RuntimeContainerNotFound
from node.runtime.api import ContainerState, ExecError, Runtime, RuntimeError_
from node.runtime.logs import read_lines
from node.streaming import (
    ByteSource,
    ContainerNotFound,
    ContainerNotRunning,
    LogOptions,
    LogRecord,
    LogsUnavailable,
    PodNotFound,
    PodRef,
    Sample,
    StreamingError,
    Streams,
)
from node.streaming.procstats import host_usage

__all__ = ["RuntimeStreams"]


class _Input:
    """The client's stdin as the runtime reads it (``read(n)``)."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self._left = b""

    async def read(self, n: int = -1) -> bytes:
        data = self._left or await self._source.read()
        if n < 0 or len(data) <= n:
            self._left = b""
            return data
        self._left = data[n:]
        return data[:n]


def _names(w: PodWorker) -> set[str]:
    spec = w.pod.get("spec") or {}
    return {c.get("name", "") for key in ("containers", "initContainers", "ephemeralContainers")
            for c in spec.get(key) or []}


class RuntimeStreams:
    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.workers: PodWorkers | None = None

    def bind(self, runtime: Runtime, workers: PodWorkers) -> None:
        self.runtime, self.workers = runtime, workers

    def _worker(self, pod: PodRef) -> tuple[Runtime, PodWorker]:
        w = self.workers.find(pod.namespace, pod.name, pod.uid) if self.workers else None
        if w is None or w.removed or self.runtime is None:
            raise PodNotFound(pod)
        return self.runtime, w

    def _running(self, pod: PodRef, container: str) -> tuple[Runtime, str]:
        rt, w = self._worker(pod)
        if container not in _names(w):
            raise ContainerNotFound(pod, container)
        cid = running_container_id(w.last_status or {}, container)
        if cid is None:
            raise ContainerNotRunning(container)
        return rt, cid

    # --- exec, attach, port-forward ----------------------------------------------------------

    async def exec(self, pod: PodRef, container: str, command: Sequence[str],
                   streams: Streams) -> int:
        rt, cid = self._running(pod, container)
        try:
            return await rt.exec(cid, command,
                                 stdin=_Input(streams.stdin) if streams.stdin else None,
                                 stdout=streams.stdout, stderr=streams.stderr, tty=streams.tty,
                                 resize=streams.resize)
        except RuntimeContainerNotFound:
            raise ContainerNotRunning(container) from None
        except ExecError as e:
            if "is not running" in str(e):
                raise ContainerNotRunning(container) from None
            raise StreamingError(str(e)) from None

    async def attach(self, pod: PodRef, container: str, streams: Streams) -> None:
        rt, cid = self._running(pod, container)
        try:
            await rt.attach(cid, stdin=_Input(streams.stdin) if streams.stdin else None,
                            stdout=streams.stdout, stderr=streams.stderr,
                            resize=streams.resize)
        except (RuntimeContainerNotFound, ExecError):
            raise ContainerNotRunning(container) from None

    async def port_forward(self, pod: PodRef,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        rt, w = self._worker(pod)
        try:
            reader, writer = await rt.port_forward(w.uid, port)
        except RuntimeError_ as e:
            raise StreamingError(str(e)) from None
        return cast(asyncio.StreamReader, reader), cast(asyncio.StreamWriter, writer)

    # --- logs --------------------------------------------------------------------------------

    async def logs(self, pod: PodRef, container: str,
                   options: LogOptions) -> AsyncIterator[LogRecord]:
        rt, w = self._worker(pod)
        if container not in _names(w):
            raise ContainerNotFound(pod, container)
        try:
            cid = log_container_id(w.last_status or {}, pod.name, container, options.previous)
            path = rt.log_path(cid)
        except LogTargetError as e:
            raise LogsUnavailable(e.message) from None
        except RuntimeContainerNotFound:
            raise LogsUnavailable.terminated(container, pod.name) from None
        return self._records(path, options, self._running_check(rt, cid))

    @staticmethod
    def _running_check(rt: Runtime, cid: str) -> Callable[[], Awaitable[bool]]:
        async def running() -> bool:
            try:
                return (await rt.container_status(cid)).state is ContainerState.RUNNING
            except RuntimeContainerNotFound:
                return False
        return running

    @staticmethod
    async def _records(path: str, options: LogOptions,
                       running: Callable[[], Awaitable[bool]]) -> AsyncIterator[LogRecord]:
        lines = read_lines(path, tail_lines=options.tail_lines, since=options.since_time,
                           follow=options.follow and not options.previous, running=running)
        try:
            async for line in lines:
                yield LogRecord(line.time_ns, line.data)
        finally:
            await lines.aclose()

    # --- stats -------------------------------------------------------------------------------

    async def stats(self) -> Sample:
        node = host_usage()
        if self.runtime is None or self.workers is None:
            return Sample(node)
        rt = self.runtime
        by_pod: dict[str, list[ContainerStats]] = {}
        for c in await rt.list_containers():
            if c.state is not ContainerState.RUNNING:
                continue
            s = await rt.stats(c.id)
            if s is not None:
                by_pod.setdefault(c.pod_uid, []).append(ContainerStats(
                    c.name, Usage(s.cpu_usage_ns, s.memory_working_set_bytes)))
        pods = []
        for uid, containers in by_pod.items():
            w = self.workers.workers.get(uid)
            if w is None:
                continue
            meta = w.pod.get("metadata") or {}
            pods.append(PodStats(meta.get("namespace", ""), meta.get("name", ""), uid,
                                 tuple(sorted(containers, key=lambda x: x.name))))
        return Sample(node, tuple(pods))
