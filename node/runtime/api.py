"""The container runtime interface: what the node agent asks of a runtime, in CRI's shape.

The pod workers (``node.pods``) drive a :class:`Runtime` and never know which one it is: the
process runtime (``node.runtime.process``: a supervised process group per container), the fake
runtime (``node.runtime.fake``: unit tests and hollow nodes), and later an isolated runtime
(namespaces, cgroups and OCI images through crun/runc) behind the same methods.

The split follows CRI (``k8s.io/cri-api`` ``RuntimeService``/``ImageService``): a *pod sandbox*
holds what containers of one pod share (its IP, its volumes, its log directory); a *container*
is one attempt at running one container of the pod spec — a restart is a new container with
``attempt + 1``, and the dead one stays listed (for ``lastState`` and ``kubectl logs
--previous``) until the agent removes it.  Everything the agent computes from the pod spec
(environment, command, mounts, limits) arrives already resolved in a :class:`ContainerConfig`;
the runtime interprets nothing of the Kubernetes API.

Streams are plain asyncio shapes so that any protocol can sit on top (the streaming server
adapts them to kubectl's WebSocket channels): input is a :class:`ByteSource` (an
``asyncio.StreamReader`` is one), output is an async write callback, terminal resizes an async
iterator of :class:`TerminalSize` (the streaming protocol's own type).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from control.api.streamproto.channels import TerminalSize

__all__ = [
    "ByteSink",
    "ByteSource",
    "ContainerAlreadyRunning",
    "ContainerConfig",
    "ContainerEvent",
    "ContainerNotFound",
    "ContainerPort",
    "ContainerState",
    "ContainerStats",
    "ContainerStatus",
    "ExecError",
    "ExecResult",
    "ImageNotFound",
    "Mount",
    "PodSandbox",
    "PodSandboxConfig",
    "Resources",
    "Runtime",
    "RuntimeError_",
    "SandboxNotFound",
    "StartError",
    "StreamWriterLike",
    "TerminalSize",
    "VolumeContent",
    "VolumeFile",
    "format_container_id",
    "parse_container_id",
]


# --- errors ---------------------------------------------------------------------------------


class RuntimeError_(Exception):
    """Base of what a runtime raises.  Named with a trailing underscore so it never shadows
    the builtin ``RuntimeError`` in a module that imports ``*``."""


class ImageNotFound(RuntimeError_):
    """The image cannot be pulled (unknown to the catalog): the pod worker shows ErrImagePull,
    then ImagePullBackOff, as the kubelet does."""


class SandboxNotFound(RuntimeError_):
    """No sandbox for that pod (never created, or removed)."""


class ContainerNotFound(RuntimeError_):
    """No container with that id (never created, or removed)."""


class ContainerAlreadyRunning(RuntimeError_):
    """Creating or starting a container while another instance of the same pod container is
    running: a runtime never runs two copies of one container."""


class StartError(RuntimeError_):
    """The container was created but its process could not start (the command does not exist,
    the working directory is missing...).  The container is then listed as exited with exit
    code 128 and reason ``StartError``, as containerd reports it."""


class ExecError(RuntimeError_):
    """An exec could not start (the command does not exist, the container is not running);
    the streaming server reports it as an InternalError Status, not as an exit code."""


# --- sandbox ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeFile:
    """One file of a materialised volume: ``path`` relative to the volume's root."""

    path: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class VolumeContent:
    """A pod volume, resolved by the agent: ``files`` for configMap/secret/downwardAPI/
    projected (written atomically, updated in place through a ``..data`` symlink as the kubelet
    does), none for emptyDir (an empty directory the containers share)."""

    name: str
    kind: str  # "emptyDir", "configMap", "secret", "downwardAPI", "projected"
    files: tuple[VolumeFile, ...] = ()
    medium: str = ""  # emptyDir "Memory": a tmpfs where the runtime can mount one


@dataclass(frozen=True)
class PodSandboxConfig:
    """What the containers of one pod share."""

    uid: str
    name: str
    namespace: str
    hostname: str = ""
    host_network: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[VolumeContent, ...] = ()


@dataclass(frozen=True)
class PodSandbox:
    """A running (``ready``) or stopped pod sandbox.  ``volume_paths`` maps each volume name
    to the host directory holding it."""

    id: str
    uid: str
    name: str
    namespace: str
    ip: str
    ready: bool
    created_at: dt.datetime
    volume_paths: Mapping[str, str] = field(default_factory=dict)


# --- containers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """A volume (or a sub-path of one) as the container should see it at ``container_path``.
    The process runtime has no mount namespace: it exports the mapping to the process (see
    ``node.runtime.process``); an isolated runtime bind-mounts it."""

    container_path: str
    host_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerPort:
    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class Resources:
    """Limits the runtime enforces where the host allows (cgroup, else ``RLIMIT_*``).  CPU in
    millicores, memory in bytes; ``None`` is unlimited."""

    cpu_limit_millis: int | None = None
    memory_limit_bytes: int | None = None
    cpu_request_millis: int | None = None
    memory_request_bytes: int | None = None


@dataclass(frozen=True)
class ContainerConfig:
    """One attempt at one container of a pod, resolved: ``command``/``args`` are the pod
    spec's after ``$(VAR)`` expansion (the image's defaults apply as Docker applies them:
    ``command`` replaces the entrypoint and drops the image's cmd, ``args`` replaces the
    cmd); ``env`` is ordered, later names win."""

    name: str
    image: str
    attempt: int = 0
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    resources: Resources = Resources()
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


class ContainerState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ContainerStatus:
    """The runtime's view of one container instance.  ``exit_code``/``reason``/``message``
    and ``finished_at`` are set once it has exited (reason ``Completed``, ``Error``,
    ``OOMKilled``, ``StartError`` or ``ContainerStatusUnknown``)."""

    id: str
    pod_uid: str
    name: str
    attempt: int
    image: str
    image_ref: str
    state: ContainerState
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    log_path: str = ""


@dataclass(frozen=True)
class ContainerEvent:
    """Something changed in a pod's containers (started, exited, removed): the pod worker of
    ``pod_uid`` should look again.  Level-triggered: the event carries no state."""

    pod_uid: str
    container_id: str
    kind: str  # "started", "exited", "removed"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes  # stdout and stderr, interleaved as they came, truncated by the runtime
    timed_out: bool = False


@dataclass(frozen=True)
class ContainerStats:
    """A sample: cumulative CPU time and current memory; rates come from two samples
    (``node.runtime.stats.cpu_nano_cores``)."""

    container_id: str
    timestamp: dt.datetime
    monotonic: float
    cpu_usage_ns: int
    memory_working_set_bytes: int
    memory_rss_bytes: int


class ByteSource(Protocol):
    """An input stream: ``read`` returns up to ``n`` bytes, ``b""`` at end of input
    (``asyncio.StreamReader`` is one)."""

    async def read(self, n: int = -1) -> bytes: ...


ByteSink = Callable[[bytes], Awaitable[None]]
"""An output stream: awaited once per chunk; the runtime never calls it concurrently."""


def format_container_id(runtime: str, container_id: str) -> str:
    """The API's ``containerID``: ``<runtime>://<id>`` (``containerd://...``)."""
    return f"{runtime}://{container_id}"


def parse_container_id(text: str) -> str:
    """The runtime's id in an API ``containerID`` (or the id itself, if unprefixed)."""
    return text.partition("://")[2] or text


# --- the interface ---------------------------------------------------------------------------


class Runtime(Protocol):
    """A container runtime.  Every method is safe to call again after a failure or a restart of
    the agent (idempotent where CRI's is); none blocks the event loop.  Errors are the
    :class:`RuntimeError_` subclasses above; anything else is a bug."""

    name: str
    """Prefix of the API's containerIDs (``process``, ``fake``)."""

    # images
    async def pull_image(self, image: str) -> str:
        """Make ``image`` available; returns its reference (``imageID``).
        Raises :class:`ImageNotFound`."""
        ...

    # sandboxes
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        """Create (or return the existing) sandbox of pod ``config.uid``: an IP, the volume
        directories, the log directory.  Idempotent per uid."""
        ...

    async def update_volumes(self, pod_uid: str, volumes: Sequence[VolumeContent]) -> None:
        """Rewrite the contents of the named volumes atomically (ConfigMap/Secret updates)."""
        ...

    async def stop_pod_sandbox(self, pod_uid: str) -> None:
        """Kill every container of the pod still running (no grace: the agent stops them
        gracefully first) and mark the sandbox not ready.  The IP stays reserved."""
        ...

    async def remove_pod_sandbox(self, pod_uid: str) -> None:
        """Stop, then remove the sandbox and all its containers, logs and volumes, and release
        its IP.  Removing an absent sandbox is not an error."""
        ...

    async def pod_sandbox(self, pod_uid: str) -> PodSandbox | None: ...

    async def list_pod_sandboxes(self) -> list[PodSandbox]: ...

    # containers
    async def create_container(self, pod_uid: str, config: ContainerConfig) -> str:
        """Create a container in the pod's sandbox; returns its id.  Raises
        :class:`SandboxNotFound`, :class:`ImageNotFound`, or :class:`ContainerAlreadyRunning`
        if an instance of ``config.name`` is running in that pod."""
        ...

    async def start_container(self, container_id: str) -> None:
        """Start a created container.  Raises :class:`StartError` (and lists the container as
        exited with code 128) when its process cannot start."""
        ...

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM the container's processes, SIGKILL them after ``grace_seconds``, and return
        once it has exited.  Stopping an exited container is a no-op."""
        ...

    async def remove_container(self, container_id: str) -> None:
        """Forget an exited container and delete its log (a running one is killed first)."""
        ...

    async def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        """Every container instance (all attempts, all states), of one pod or of all."""
        ...

    async def container_status(self, container_id: str) -> ContainerStatus:
        """Raises :class:`ContainerNotFound`."""
        ...

    def subscribe(self, handler: Callable[[ContainerEvent], None]) -> Callable[[], None]:
        """Call ``handler`` (on the event loop, never blocking) whenever a container starts,
        exits or is removed; returns the function that unsubscribes."""
        ...

    # streams
    async def exec(self, container_id: str, command: Sequence[str], *,
                   stdin: ByteSource | None = None, stdout: ByteSink | None = None,
                   stderr: ByteSink | None = None, tty: bool = False,
                   resize: AsyncIterator[TerminalSize] | None = None) -> int:
        """Run ``command`` in the container's context until it exits; returns its exit code
        (128+N when killed by signal N).  With ``tty`` stderr is merged into stdout.  Raises
        :class:`ExecError` when it cannot start, :class:`ContainerNotFound`.  Cancelling the
        call kills the command."""
        ...

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        """Run ``command`` to completion or ``timeout`` seconds (then kill it: ``timed_out``);
        for probes and hooks.  Raises :class:`ExecError`, :class:`ContainerNotFound`."""
        ...

    async def attach(self, container_id: str, *, stdin: ByteSource | None = None,
                     stdout: ByteSink | None = None, stderr: ByteSink | None = None,
                     resize: AsyncIterator[TerminalSize] | None = None) -> None:
        """Connect to the running container's main process until it exits or the input ends
        (with ``stdinOnce`` the container's stdin closes when the first attach ends)."""
        ...

    async def port_forward(self, pod_uid: str, port: int) -> tuple[ByteSource, StreamWriterLike]:
        """A TCP connection to ``port`` of the pod (its IP); the caller owns and closes it."""
        ...

    # logs and stats
    def log_path(self, container_id: str) -> str:
        """The container's CRI-format log file (rotated files beside it, ``.1`` newest).
        Raises :class:`ContainerNotFound`."""
        ...

    async def stats(self, container_id: str) -> ContainerStats | None:
        """A resource sample of a running container; None when it is not running."""
        ...

    async def close(self) -> None:
        """Stop watching; containers keep running (a new instance re-adopts them)."""
        ...


class StreamWriterLike(Protocol):
    """The writing half of a port-forward connection (``asyncio.StreamWriter`` is one)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...

    def can_write_eof(self) -> bool: ...

    def write_eof(self) -> None: ...
