"""The process runtime: each container a supervised process group, each pod an IP on the
loopback network and a directory of volumes.

Who does what:

* this module keeps the records (``process_state``) and answers the
  :class:`~node.runtime.api.Runtime` calls; the agent's process is a child subreaper
  (``reaper``) so nothing it or its containers orphan becomes a zombie;
* each started container gets a shim (``shim``, spawned with ``posix_spawn`` in a new session)
  that runs the container process in its own session and process group, writes its log, keeps
  its stdin for attach and records its exit.  Shims outlive the agent: a new
  :class:`ProcessRuntime` over the same directory re-adopts every container (``classify``)
  instead of starting duplicates;
* starting (through the shim), noticing the end of and stopping containers is
  ``supervision``; exec, attach and port-forward are in ``process_streams``.

Limits: memory and CPU through a per-container cgroup when the agent is root and the
hierarchy is writable (``cgroups``), else memory as ``RLIMIT_DATA`` and no CPU limit.
No mount or network namespace: the pod's volumes are directories whose container paths are
translated in the command, args and environment (``process_state.translate``) and exported as
``KETCH_MOUNTS``; the pod's IP is a loopback address its processes bind (``POD_IP``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Self

from control.api.clock import Clock, RealClock

from . import cgroups, process_streams
from .api import (
    ByteSink,
    ByteSource,
    ContainerAlreadyRunning,
    ContainerConfig,
    ContainerEvent,
    ContainerNotFound,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    PodSandbox,
    PodSandboxConfig,
    Runtime,
    RuntimeError_,
    SandboxNotFound,
    StreamWriterLike,
    TerminalSize,
    VolumeContent,
)
from .images import ImageCatalog
from .logs import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE
from .network import DEFAULT_POD_CIDR, PodIPAllocator
from .process_state import (
    ContainerRecord,
    argv_for,
    classify,
    launch_env,
    mount_pairs,
    read_json,
    translate,
    working_dir,
    write_json,
)
from .reaper import Reaper, set_child_subreaper
from .stats import container_stats
from .supervision import Supervisor
from .volumes import write_volume

__all__ = ["ProcessRuntime"]

log = logging.getLogger("ketch.node.process")

_START_TIMEOUT = 30.0


class ProcessRuntime:
    """A :class:`~node.runtime.api.Runtime` of host processes, its state under ``root``.

    Use ``async with ProcessRuntime(...) as rt`` (or :meth:`start` / :meth:`close`): start
    re-adopts what a previous instance left running; close stops watching and leaves the
    containers running."""

    name = "process"

    def __init__(self, root: str, *, pod_cidr: str = DEFAULT_POD_CIDR,
                 catalog: ImageCatalog | None = None, clock: Clock | None = None,
                 logs_dir: str | None = None, log_max_size: int = DEFAULT_MAX_SIZE,
                 log_max_files: int = DEFAULT_MAX_FILES, use_cgroups: bool = True,
                 orphan_scan_seconds: float = 2.0, run_record: str = "",
                 run_record_tags: dict[str, str] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.logs_dir = os.path.abspath(logs_dir or os.path.join(self.root, "logs"))
        self.catalog = catalog or ImageCatalog()
        self.clock = clock or RealClock()
        self.log_max_size, self.log_max_files = log_max_size, log_max_files
        os.makedirs(os.path.join(self.root, "pods"), exist_ok=True)
        self.ips = PodIPAllocator(pod_cidr, os.path.join(self.root, "ips.json"))
        self._use_cgroups = use_cgroups
        # the node's run record (``runrecord``): every container start and exit, by its shim
        self.run_record = run_record
        self.run_record_tags = dict(run_record_tags or {})
        self._cgroups: cgroups.CgroupManager | None = None
        self._sandboxes: dict[str, dict[str, Any]] = {}
        self._containers: dict[str, ContainerRecord] = {}
        self._handlers: list[Callable[[ContainerEvent], None]] = []
        self.reaper = Reaper(scan_seconds=orphan_scan_seconds, on_orphan=self._orphan_reaped)
        self.supervisor = Supervisor(reaper=self.reaper, clock=self.clock,
                                     cgroups=lambda: self._cgroups, spawn=self._spawn,
                                     on_change=self._publish)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.subreaper = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        self.subreaper = set_child_subreaper()
        if self._use_cgroups:
            self._cgroups = await asyncio.to_thread(cgroups.detect)
        sandboxes, records = await asyncio.to_thread(self._load)
        self._sandboxes = sandboxes
        for rec in records:
            self._containers[rec.id] = rec
            if rec.state is ContainerState.RUNNING:
                self.supervisor.watch(rec)
        self._spawn(self.reaper.run())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.reaper.close()

    def _orphan_reaped(self, pid: int, code: int) -> None:
        self.supervisor.orphan_reaped(list(self._containers.values()), pid, code)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _load(self) -> tuple[dict[str, dict[str, Any]], list[ContainerRecord]]:
        sandboxes, records = {}, []
        pods = os.path.join(self.root, "pods")
        for uid in sorted(os.listdir(pods)):
            sb = read_json(os.path.join(pods, uid, "sandbox.json"))
            if sb is None:
                continue
            sandboxes[uid] = sb
            cdir = os.path.join(pods, uid, "containers")
            for cid in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
                meta = read_json(os.path.join(cdir, cid, "meta.json"))
                if meta is None:
                    continue
                rec = ContainerRecord.from_meta(os.path.join(cdir, cid), meta)
                classify(rec)
                records.append(rec)
        return sandboxes, records

    # --- events -----------------------------------------------------------------------------

    def subscribe(self, handler: Callable[[ContainerEvent], None]) -> Callable[[], None]:
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def _publish(self, rec: ContainerRecord, kind: str) -> None:
        event = ContainerEvent(rec.pod_uid, rec.id, kind)
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                log.exception("container event handler failed")

    # --- images and sandboxes ---------------------------------------------------------------

    async def pull_image(self, image: str) -> str:
        return self.catalog.image_ref(image)

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        existing = self._sandboxes.get(config.uid)
        if existing is not None and existing.get("ready"):
            return _sandbox(existing)
        pod_dir = self._pod_dir(config.uid)
        ip = await asyncio.to_thread(self.ips.allocate, config.uid)
        volumes = {v.name: os.path.join(pod_dir, "volumes", v.name) for v in config.volumes}
        sb = {"id": config.uid, "uid": config.uid, "name": config.name,
              "namespace": config.namespace, "hostname": config.hostname or config.name,
              "ip": ip, "ready": True, "volumes": volumes,
              "labels": _recorded_labels(config.labels, config.annotations),
              "created_at": (existing or {}).get("created_at") or self.clock.now().isoformat()}

        def make() -> None:
            os.makedirs(os.path.join(pod_dir, "containers"), exist_ok=True)
            os.makedirs(os.path.join(pod_dir, "root"), exist_ok=True)
            for v in config.volumes:
                write_volume(volumes[v.name], v, now=self.clock.now())
            write_json(os.path.join(pod_dir, "sandbox.json"), sb)

        await asyncio.to_thread(make)
        self._sandboxes[config.uid] = sb
        return _sandbox(sb)

    async def update_volumes(self, pod_uid: str, volumes: Sequence[VolumeContent]) -> None:
        sb = self._sandbox_record(pod_uid)

        def update() -> None:
            for v in volumes:
                path = sb["volumes"].get(v.name) or os.path.join(
                    self._pod_dir(pod_uid), "volumes", v.name)
                write_volume(path, v, now=self.clock.now())
                sb["volumes"][v.name] = path
            write_json(os.path.join(self._pod_dir(pod_uid), "sandbox.json"), sb)

        await asyncio.to_thread(update)

    async def stop_pod_sandbox(self, pod_uid: str) -> None:
        sb = self._sandboxes.get(pod_uid)
        if sb is None:
            return
        running = [r for r in self._containers.values()
                   if r.pod_uid == pod_uid and r.state is ContainerState.RUNNING]
        await asyncio.gather(*(self.stop_container(r.id, 0) for r in running))
        if sb.get("ready"):
            sb["ready"] = False
            await asyncio.to_thread(write_json, os.path.join(self._pod_dir(pod_uid),
                                                             "sandbox.json"), sb)

    async def remove_pod_sandbox(self, pod_uid: str) -> None:
        await self.stop_pod_sandbox(pod_uid)
        for rec in [r for r in self._containers.values() if r.pod_uid == pod_uid]:
            await self.remove_container(rec.id)
        sb = self._sandboxes.pop(pod_uid, None)
        logs = os.path.join(self.logs_dir, _log_dir_name(sb, pod_uid)) if sb else None

        def remove() -> None:
            shutil.rmtree(self._pod_dir(pod_uid), ignore_errors=True)
            if logs:
                shutil.rmtree(logs, ignore_errors=True)
            self.ips.release(pod_uid)

        await asyncio.to_thread(remove)

    async def pod_sandbox(self, pod_uid: str) -> PodSandbox | None:
        sb = self._sandboxes.get(pod_uid)
        return _sandbox(sb) if sb is not None else None

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return [_sandbox(sb) for sb in self._sandboxes.values()]

    def _sandbox_record(self, pod_uid: str) -> dict[str, Any]:
        sb = self._sandboxes.get(pod_uid)
        if sb is None:
            raise SandboxNotFound(f"no sandbox for pod {pod_uid}")
        return sb

    def _pod_dir(self, pod_uid: str) -> str:
        return os.path.join(self.root, "pods", pod_uid)

    # --- containers -------------------------------------------------------------------------

    async def create_container(self, pod_uid: str, config: ContainerConfig) -> str:
        sb = self._sandbox_record(pod_uid)
        if not sb.get("ready"):
            raise SandboxNotFound(f"the sandbox of pod {pod_uid} is stopped")
        entry = self.catalog.resolve(config.image)
        for rec in self._containers.values():
            if rec.pod_uid == pod_uid and rec.name == config.name:
                if rec.state is ContainerState.RUNNING:
                    raise ContainerAlreadyRunning(
                        f"container {config.name!r} of pod {pod_uid} is running ({rec.id})")
                if rec.attempt == config.attempt and rec.state is ContainerState.CREATED:
                    return rec.id
        cid = uuid.uuid4().hex
        cdir = os.path.join(self._pod_dir(pod_uid), "containers", cid)
        mounts = mount_pairs(config.mounts)
        env = launch_env(config, entry, pod_ip=sb["ip"], hostname=sb["hostname"],
                         home=os.path.expanduser("~"))
        rec = ContainerRecord(
            id=cid, pod_uid=pod_uid, name=config.name, attempt=config.attempt,
            image=config.image, image_ref=self.catalog.image_ref(config.image), dir=cdir,
            log_path=os.path.join(self.logs_dir, _log_dir_name(sb, pod_uid), config.name,
                                  f"{config.attempt}.log"),
            created_at=self.clock.now(), env=env, cwd="", mounts=mounts)
        spec = await asyncio.to_thread(self._prepare, rec, config, entry)
        rec.cwd = spec["cwd"]
        self._containers[cid] = rec
        await asyncio.to_thread(self._write_records, rec, spec)
        return cid

    def _prepare(self, rec: ContainerRecord, config: ContainerConfig,
                 entry: Any) -> dict[str, Any]:
        scratch = os.path.join(self._pod_dir(rec.pod_uid), "root")
        env = {k: _translate_env(k, v, rec.mounts) for k, v in rec.env.items()}
        rec.env = env
        cgroup_procs: list[str] = []
        rlimits: dict[str, int] = {}
        r = config.resources
        if self._cgroups is not None and (r.memory_limit_bytes or r.cpu_limit_millis):
            try:
                cgroup_procs = self._cgroups.create(f"{rec.pod_uid}/{rec.id}", r)
                rec.cgroup = f"{rec.pod_uid}/{rec.id}"
            except OSError as e:
                log.info("no cgroup for container %s (%s): using rlimits", rec.id, e)
        if rec.cgroup is None and r.memory_limit_bytes:
            rlimits["RLIMIT_DATA"] = r.memory_limit_bytes
        spec: dict[str, Any] = {}
        if self.run_record:
            sb = self._sandboxes.get(rec.pod_uid) or {}
            spec["run_record"] = {"path": self.run_record, "tags": {
                **self.run_record_tags, "uid": rec.pod_uid, "namespace": sb.get("namespace"),
                "pod": sb.get("name"), "container": rec.name, "id": rec.id,
                "attempt": rec.attempt, "labels": sb.get("labels") or {}}}
        return spec | {"argv": argv_for(self.catalog, entry, config, env, rec.mounts),
                "env": sorted(env.items()), "cwd": working_dir(config, entry, rec.mounts,
                                                               scratch),
                "log_path": rec.log_path, "log_max_size": self.log_max_size,
                "log_max_files": self.log_max_files, "stdin": config.stdin,
                "stdin_once": config.stdin_once, "tty": config.tty,
                "cgroup_procs": cgroup_procs, "rlimits": rlimits}

    @staticmethod
    def _write_records(rec: ContainerRecord, spec: dict[str, Any]) -> None:
        os.makedirs(rec.dir, exist_ok=True)
        write_json(os.path.join(rec.dir, "spec.json"), spec)
        write_json(os.path.join(rec.dir, "meta.json"), rec.meta())

    async def start_container(self, container_id: str) -> None:
        rec = self._record(container_id)
        if rec.state is ContainerState.RUNNING:
            return
        if rec.state is not ContainerState.CREATED:
            raise RuntimeError_(f"container {container_id} has already run; create a new one")
        for other in self._containers.values():
            if other.pod_uid == rec.pod_uid and other.name == rec.name \
                    and other.state is ContainerState.RUNNING:
                raise ContainerAlreadyRunning(f"container {rec.name!r} is running ({other.id})")
        await self.supervisor.start(rec)

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        await self.supervisor.stop(self._record(container_id), grace_seconds)

    async def remove_container(self, container_id: str) -> None:
        rec = self._containers.get(container_id)
        if rec is None:
            return
        if rec.state is ContainerState.RUNNING:
            await self.stop_container(container_id, 0)

        def remove() -> None:
            shutil.rmtree(rec.dir, ignore_errors=True)
            for path in [rec.log_path, *(f"{rec.log_path}.{i}"
                                         for i in range(1, self.log_max_files + 1))]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            if rec.cgroup and self._cgroups is not None:
                self._cgroups.remove(rec.cgroup)

        await asyncio.to_thread(remove)
        self._containers.pop(container_id, None)
        self._publish(rec, "removed")

    async def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        return [r.status() for r in self._containers.values()
                if pod_uid is None or r.pod_uid == pod_uid]

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._record(container_id).status()

    def _record(self, container_id: str) -> ContainerRecord:
        rec = self._containers.get(container_id)
        if rec is None:
            raise ContainerNotFound(f"container {container_id} not found")
        return rec

    def log_path(self, container_id: str) -> str:
        return self._record(container_id).log_path

    # --- streams and stats ------------------------------------------------------------------

    async def exec(self, container_id: str, command: Sequence[str], *,
                   stdin: ByteSource | None = None, stdout: ByteSink | None = None,
                   stderr: ByteSink | None = None, tty: bool = False,
                   resize: AsyncIterator[TerminalSize] | None = None) -> int:
        rec = self._running(container_id)
        return await process_streams.run_exec(rec, self._exec_spec(rec), command, stdin=stdin,
                                              stdout=stdout, stderr=stderr, tty=tty,
                                              resize=resize)

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        rec = self._running(container_id)
        return await process_streams.run_exec_sync(rec, self._exec_spec(rec), command,
                                                   timeout=timeout)

    async def attach(self, container_id: str, *, stdin: ByteSource | None = None,
                     stdout: ByteSink | None = None, stderr: ByteSink | None = None,
                     resize: AsyncIterator[TerminalSize] | None = None) -> None:
        rec = self._running(container_id)
        await process_streams.run_attach(rec, stdin=stdin, stdout=stdout, stderr=stderr,
                                         resize=resize)

    async def port_forward(self, pod_uid: str, port: int) -> tuple[ByteSource,
                                                                    StreamWriterLike]:
        return await process_streams.connect(self._sandbox_record(pod_uid)["ip"], port)

    def _running(self, container_id: str) -> ContainerRecord:
        rec = self._record(container_id)
        if rec.state is not ContainerState.RUNNING:
            raise process_streams.not_running(rec)
        return rec

    def _exec_spec(self, rec: ContainerRecord) -> dict[str, Any]:
        spec: dict[str, Any] = {"cgroup_procs": [], "rlimits": {}}
        if rec.cgroup and self._cgroups is not None:
            spec["cgroup_procs"] = [os.path.join(h.base, rec.cgroup, "cgroup.procs")
                                    for h in self._cgroups.hierarchies]
        return spec

    async def stats(self, container_id: str) -> ContainerStats | None:
        rec = self._containers.get(container_id)
        if rec is None or rec.state is not ContainerState.RUNNING:
            return None
        return await asyncio.to_thread(container_stats, rec, self._cgroups, self.clock)


def _sandbox(sb: dict[str, Any]) -> PodSandbox:
    return PodSandbox(id=sb["id"], uid=sb["uid"], name=sb["name"], namespace=sb["namespace"],
                      ip=sb["ip"], ready=bool(sb.get("ready")),
                      created_at=dt.datetime.fromisoformat(sb["created_at"]),
                      volume_paths=dict(sb.get("volumes") or {}))


_JOB_INDEX = "batch.kubernetes.io/job-completion-index"


def _recorded_labels(labels: Any, annotations: Any) -> dict[str, str]:
    """What the run record tags a pod with: its labels and its Job completion index."""
    out = dict(labels or {})
    if _JOB_INDEX in (annotations or {}):
        out[_JOB_INDEX] = str(annotations[_JOB_INDEX])
    return out


def _log_dir_name(sb: dict[str, Any], uid: str) -> str:
    return f"{sb['namespace']}_{sb['name']}_{uid}"


def _translate_env(name: str, value: str, mounts: list[tuple[str, str]]) -> str:
    # KETCH_* are the runtime's own (KETCH_MOUNTS holds the container paths on purpose)
    return value if name.startswith("KETCH_") else translate(value, mounts)


def _conforms(rt: ProcessRuntime) -> Runtime:  # mypy holds ProcessRuntime to the protocol
    return rt
