"""The process runtime's records, on disk and in memory, and how a container's launch is
prepared from its :class:`~node.runtime.api.ContainerConfig`.

Layout under the runtime's directory (one per node)::

    ips.json                                   pod IP allocations (node.runtime.network)
    pods/<uid>/sandbox.json                    the sandbox (name, namespace, IP, ready)
    pods/<uid>/volumes/<volume>/               materialised volumes (node.runtime.volumes)
    pods/<uid>/root/                           the pod's scratch directory (default cwd)
    pods/<uid>/containers/<id>/meta.json       the agent's record: name, attempt, image, env...
    pods/<uid>/containers/<id>/spec.json       the shim's input: argv, env, cwd, log, limits
    pods/<uid>/containers/<id>/started         written just before the shim is spawned
    pods/<uid>/containers/<id>/lock            flock-ed by the live shim
    pods/<uid>/containers/<id>/state.json      written by the shim: pids and start ticks
    pods/<uid>/containers/<id>/exit.json       written by the shim (or by the agent for a lost
                                               container): exit code, reason, times
    logs/<namespace>_<name>_<uid>/<container>/<attempt>.log   (the kubelet's /var/log/pods)

:func:`classify` reads one container directory after a restart and says what the container is
now — the heart of re-adoption: a held lock means the shim (and so the container) is alive.
Everything here is blocking I/O; the runtime calls it from worker threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import parse_time

from . import procfs
from .api import ContainerConfig, ContainerState, ContainerStatus, Mount
from .images import DEFAULT_PATH, ImageCatalog, ImageEntry

__all__ = [
    "ContainerRecord",
    "argv_for",
    "classify",
    "launch_env",
    "mount_pairs",
    "read_json",
    "shim_alive",
    "translate",
    "working_dir",
    "write_json",
]


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class ContainerRecord:
    """One container instance as the runtime tracks it."""

    id: str
    pod_uid: str
    name: str
    attempt: int
    image: str
    image_ref: str
    dir: str
    log_path: str
    created_at: dt.datetime
    env: dict[str, str]
    cwd: str
    mounts: list[tuple[str, str]]
    cgroup: str | None = None
    state: ContainerState = ContainerState.CREATED
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    pid: int | None = None
    pid_start: int | None = None
    shim_pid: int | None = None
    shim_start: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    def status(self) -> ContainerStatus:
        return ContainerStatus(
            id=self.id, pod_uid=self.pod_uid, name=self.name, attempt=self.attempt,
            image=self.image, image_ref=self.image_ref, state=self.state,
            created_at=self.created_at, started_at=self.started_at,
            finished_at=self.finished_at, exit_code=self.exit_code, reason=self.reason,
            message=self.message, log_path=self.log_path)

    def meta(self) -> dict[str, Any]:
        return {"id": self.id, "pod_uid": self.pod_uid, "name": self.name,
                "attempt": self.attempt, "image": self.image, "image_ref": self.image_ref,
                "log_path": self.log_path, "created_at": self.created_at.isoformat(),
                "env": self.env, "cwd": self.cwd, "mounts": self.mounts, "cgroup": self.cgroup}

    @classmethod
    def from_meta(cls, directory: str, meta: dict[str, Any]) -> ContainerRecord:
        return cls(id=meta["id"], pod_uid=meta["pod_uid"], name=meta["name"],
                   attempt=int(meta["attempt"]), image=meta["image"],
                   image_ref=meta["image_ref"], dir=directory, log_path=meta["log_path"],
                   created_at=parse_time(meta["created_at"]) or dt.datetime.now(dt.UTC),
                   env=dict(meta["env"]), cwd=meta["cwd"],
                   mounts=[(a, b) for a, b in meta.get("mounts") or []],
                   cgroup=meta.get("cgroup"))

    def apply_exit(self, info: dict[str, Any]) -> None:
        self.state = ContainerState.EXITED
        self.exit_code = int(info.get("exit_code", 137))
        self.reason = str(info.get("reason") or ("Completed" if self.exit_code == 0
                                                 else "Error"))
        self.message = str(info.get("message") or "")
        self.started_at = self.started_at or parse_time(info.get("started_at"))
        self.finished_at = parse_time(info.get("finished_at")) or dt.datetime.now(dt.UTC)
        self.exited.set()

    def apply_running(self, state: dict[str, Any]) -> None:
        self.state = ContainerState.RUNNING
        self.pid, self.pid_start = state.get("pid"), state.get("pid_start")
        self.shim_pid, self.shim_start = state.get("shim_pid"), state.get("shim_start")
        self.started_at = parse_time(state.get("started_at")) or dt.datetime.now(dt.UTC)


def shim_alive(directory: str) -> bool:
    """Whether a shim holds this container's lock (so the container is being supervised)."""
    try:
        fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def classify(rec: ContainerRecord) -> None:
    """Bring ``rec`` (read from ``meta.json``) up to date with its directory after a restart.
    A container whose shim and process are both gone without an ``exit.json`` is recorded as
    exited, code 137, reason ContainerStatusUnknown (the kubelet's verdict for a container it
    can no longer find)."""
    exit_info = read_json(os.path.join(rec.dir, "exit.json"))
    if exit_info is not None:
        rec.apply_exit(exit_info)
        return
    state = read_json(os.path.join(rec.dir, "state.json"))
    if shim_alive(rec.dir):
        for _ in range(50):  # a shim that has just started writes state.json within moments
            if state is not None:
                break
            time.sleep(0.01)
            state = read_json(os.path.join(rec.dir, "state.json"))
        rec.apply_running(state or {})
        return
    if state is not None and procfs.is_same_process(state.get("pid"), state.get("pid_start")):
        rec.apply_running({**state, "shim_pid": None, "shim_start": None})
        return
    if state is not None or os.path.exists(os.path.join(rec.dir, "started")):
        lost = {"exit_code": 137, "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the agent restarted",
                "started_at": (state or {}).get("started_at")}
        write_json(os.path.join(rec.dir, "exit.json"),
                   {**lost, "finished_at": dt.datetime.now(dt.UTC).isoformat()})
        rec.apply_exit(lost)
        return
    rec.state = ContainerState.CREATED


# --- preparing a launch ----------------------------------------------------------------------


def launch_env(config: ContainerConfig, entry: ImageEntry, *, pod_ip: str, hostname: str,
               home: str) -> dict[str, str]:
    """The process's environment: base variables, the image's, the container's (later wins),
    then what the process runtime tells every process (``POD_IP`` unless the spec sets it,
    ``KETCH_PORTS``, ``KETCH_MOUNTS``)."""
    env = {"PATH": DEFAULT_PATH, "HOME": home, "HOSTNAME": hostname}
    if config.tty:
        env["TERM"] = "xterm"
    env.update(entry.env)
    for name, value in config.env:
        env[name] = value
    env.setdefault("POD_IP", pod_ip)
    tcp = [str(p.port) for p in config.ports if p.protocol.upper() == "TCP"]
    if not tcp and entry.default_ports:
        tcp = [str(p) for p in entry.default_ports]
    env["KETCH_PORTS"] = ",".join(tcp)
    env["KETCH_MOUNTS"] = json.dumps({m.container_path: m.host_path for m in config.mounts})
    return env


def translate(value: str, mounts: list[tuple[str, str]]) -> str:
    """Rewrite container paths under a mount to the host directory that backs it, wherever a
    path starts in ``value`` (a word of argv, a word inside an ``sh -c`` script, an env
    value).  The process runtime has no mount namespace; this is how ``cat /etc/config/key``
    finds the ConfigMap's file."""
    for container_path, host_path in sorted(mounts, key=lambda m: -len(m[0])):
        cp = container_path.rstrip("/") or "/"
        if cp == "/":
            continue
        pattern = re.compile(r"(^|(?<=[\s'\"=:(]))" + re.escape(cp) + r"(?=$|[/\s'\";:)|&])")
        value = pattern.sub(lambda _m: host_path, value)  # noqa: B023 - used at once
    return value


def working_dir(config: ContainerConfig, entry: ImageEntry, mounts: list[tuple[str, str]],
                scratch: str) -> str:
    """The process's cwd: the spec's (or image's) directory if the host has it or a mount
    backs it, else the same path under the pod's scratch directory (created); the scratch
    directory itself when none is given (never the host's ``/``)."""
    wanted = config.working_dir or entry.working_dir
    if not wanted:
        return scratch
    mapped = translate(wanted, mounts)
    if mapped != wanted or os.path.isdir(wanted):
        return mapped
    path = os.path.join(scratch, wanted.lstrip("/"))
    os.makedirs(path, exist_ok=True)
    return path


def mount_pairs(mounts: tuple[Mount, ...]) -> list[tuple[str, str]]:
    return [(m.container_path, m.host_path) for m in mounts]


def argv_for(catalog: ImageCatalog, entry: ImageEntry, config: ContainerConfig,
             env: dict[str, str], mounts: list[tuple[str, str]]) -> list[str]:
    command = [translate(a, mounts) for a in config.command]
    args = [translate(a, mounts) for a in config.args]
    return catalog.argv(entry, command, args, path=env.get("PATH", DEFAULT_PATH))
