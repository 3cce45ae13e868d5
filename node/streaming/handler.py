"""The seam between the agent's streaming server and whatever runs the containers: the
:class:`StreamHandler` protocol, the values it takes and returns, and the typed errors it raises.

The server owns the wire (WebSocket channels, SPDY, HTTP, the status and error texts kubectl
expects); a handler owns processes.  A handler never sees a socket and never formats an error
for a client: it raises one of the errors below and the server answers as kubelet would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from control.api.streamproto.channels import TerminalSize
from control.api.streamproto.options import LogOptions
from control.api.streamproto.summary import PodStats, Usage

__all__ = [
    "ByteSource",
    "ContainerNotFound",
    "ContainerNotRunning",
    "LogOptions",
    "LogRecord",
    "LogsUnavailable",
    "Output",
    "PodNotFound",
    "PodRef",
    "Sample",
    "StreamHandler",
    "StreamingError",
    "Streams",
    "TerminalSize",
]


@dataclass(frozen=True)
class PodRef:
    """The pod a request is for.  ``uid`` is the pod's UID as the apiserver knows it; it is ""
    only when a caller named the pod by namespace and name alone (``nodes/proxy``), and then
    means whichever pod the agent runs under that name.  A handler that runs a pod of that name
    with another UID raises :class:`PodNotFound`."""

    namespace: str
    name: str
    uid: str = ""


class ByteSource(Protocol):
    """A client's stdin: ``read()`` returns the next chunk, ``b""`` once at EOF (the client
    closed stdin or went away)."""

    async def read(self) -> bytes: ...


#: A client's stdout or stderr: awaiting it applies backpressure.  Writes after the client has
#: gone are dropped silently (the call that is using it is being cancelled anyway).
Output = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class Streams:
    """What one exec or attach client asked for.  With ``tty`` the handler must give the
    process a terminal (stderr then arrives merged into stdout, and ``stderr`` is None) and
    apply every size ``resize`` yields until it ends; ``resize`` is None without a TTY."""

    stdin: ByteSource | None
    stdout: Output | None
    stderr: Output | None
    tty: bool = False
    resize: AsyncIterator[TerminalSize] | None = None


@dataclass(frozen=True)
class LogRecord:
    """One line of a container's log (``data`` ends with ``\\n`` unless it is a partial last
    line) and when the runtime read it, in nanoseconds since the epoch (the server prints it
    for ``timestamps=true``)."""

    time_ns: int
    data: bytes


@dataclass(frozen=True)
class Sample:
    """One reading of the node's and every running container's resource use: cumulative CPU
    time (``Usage.cpu_core_nanoseconds``) and the memory working set now.  Rates
    (``cpu_nano_cores``) are left None: the server computes them between samples."""

    node: Usage
    pods: tuple[PodStats, ...] = ()


class StreamingError(Exception):
    """Base of the handler's errors: an HTTP code, a Kubernetes reason and the exact message
    the client is shown."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PodNotFound(StreamingError):
    code, reason = 404, "NotFound"

    def __init__(self, pod: PodRef) -> None:
        super().__init__(f'pod "{pod.namespace}/{pod.name}" not found on this node')


class ContainerNotFound(StreamingError):
    code, reason = 404, "NotFound"

    def __init__(self, pod: PodRef, container: str) -> None:
        super().__init__(f'container "{container}" not found in pod '
                         f'"{pod.namespace}/{pod.name}"')


class ContainerNotRunning(StreamingError):
    """exec or attach to a container that is not running: kubectl prints the message."""

    code, reason = 400, "BadRequest"

    def __init__(self, container: str, message: str = "") -> None:
        super().__init__(message or f'container not found ("{container}")')


class LogsUnavailable(StreamingError):
    """No log to serve, with kubelet's words for why (400): use the constructors."""

    code, reason = 400, "BadRequest"

    @classmethod
    def waiting(cls, container: str, pod: str, reason: str = "") -> LogsUnavailable:
        """The container has not started (``ContainerCreating``, ``ErrImagePull`` …); without
        a reason: the never-ran text."""
        if not reason:
            return cls(f'container "{container}" in pod "{pod}" is waiting to start - '
                       "no logs yet")
        if reason == "ErrImagePull":
            reason = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            reason = "trying and failing to pull image"
        return cls(f'container "{container}" in pod "{pod}" is waiting to start: {reason}')

    @classmethod
    def previous_not_found(cls, container: str, pod: str) -> LogsUnavailable:
        return cls(f'previous terminated container "{container}" in pod "{pod}" not found')

    @classmethod
    def terminated(cls, container: str, pod: str) -> LogsUnavailable:
        """Terminated, and its log is gone."""
        return cls(f'container "{container}" in pod "{pod}" is terminated')


class StreamHandler(Protocol):
    """What the streaming server needs of the node's container runtime.

    Every method may raise :class:`StreamingError` subclasses; anything else is a bug and is
    answered as an internal error.  Calls are cancelled when their client goes away: the
    handler then stops what it started (kills the exec'd process, closes the connection).
    """

    async def exec(self, pod: PodRef, container: str, command: Sequence[str],
                   streams: Streams) -> int:
        """Run ``command`` in the container with the given streams; return its exit code when
        it has exited and its output has been written.  A command that cannot start is
        :class:`StreamingError` (its message is shown), or exit code 126/127 as a shell
        would; a container that is not running is :class:`ContainerNotRunning`."""
        ...

    async def attach(self, pod: PodRef, container: str, streams: Streams) -> None:
        """Connect the streams to the container's main process (its output from now on, its
        stdin if the spec keeps it open); return when the process exits or ``streams.stdin``
        reaches EOF for a ``stdinOnce`` container."""
        ...

    async def port_forward(self, pod: PodRef,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new TCP connection to ``port`` in the pod's network; ``OSError`` (refused,
        unreachable) when there is none.  The server owns and closes it."""
        ...

    async def logs(self, pod: PodRef, container: str,
                   options: LogOptions) -> AsyncIterator[LogRecord]:
        """The container's log lines selected by ``options``: the previous instance's with
        ``previous``, the last ``tail_lines`` of them, none older than ``since_time`` (the
        server has turned ``since_seconds`` into ``since_time``), then, with ``follow``, new
        lines until the container exits.  Errors (no such container, never ran, no previous
        instance) are raised by the ``await``, before the first line; ``timestamps`` and
        ``limit_bytes`` are the server's job."""
        ...

    async def stats(self) -> Sample:
        """The node's and each running container's cumulative CPU time and memory now."""
        ...
