"""The process runtime with real processes: a busybox-like container's logs, exec and exit
codes, stop, attach, re-adoption by a new runtime instance, zombie reaping, an unknown image,
a command that cannot start, nginx on its pod IP, volume paths, limits and stats.

Every process a test starts is found by pid (the shims' state files) and killed at teardown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.runtime import procfs
from node.runtime.api import (
    ContainerAlreadyRunning,
    ContainerConfig,
    ContainerPort,
    ContainerState,
    ContainerStatus,
    ExecError,
    ImageNotFound,
    Mount,
    PodSandboxConfig,
    Resources,
    StartError,
    VolumeContent,
    VolumeFile,
)
from node.runtime.logs import LogOptions, read_log
from node.runtime.process import ProcessRuntime
from tests.nodefakes import Factory, poll, process_runtimes


@pytest.fixture
async def runtimes(tmp_path: Path) -> AsyncIterator[Factory]:
    """New ProcessRuntime instances over one directory (a second one is a restarted agent)."""
    async with process_runtimes(tmp_path / "rt") as make:
        yield make


@pytest.fixture
async def rt(runtimes: Factory) -> ProcessRuntime:
    return await runtimes()


async def sandbox(rt: ProcessRuntime, uid: str = "pod-1", **extra: Any) -> Any:
    return await rt.run_pod_sandbox(PodSandboxConfig(uid=uid, name=f"name-{uid}",
                                                     namespace="default", **extra))


async def run(rt: ProcessRuntime, pod_uid: str, name: str, *command: str, image: str = "busybox",
              **extra: Any) -> str:
    cid = await rt.create_container(pod_uid, ContainerConfig(name=name, image=image,
                                                             command=command, **extra))
    await rt.start_container(cid)
    return cid


async def log_of(rt: ProcessRuntime, cid: str, **options: Any) -> bytes:
    return b"".join([c async for c in read_log(rt.log_path(cid), LogOptions(**options))])


async def exited(rt: ProcessRuntime, cid: str) -> ContainerStatus:
    async def check() -> ContainerStatus | None:
        status = await rt.container_status(cid)
        return status if status.state is ContainerState.EXITED else None

    result: ContainerStatus = await poll(check)
    return result


async def test_a_container_runs_logs_execs_and_stops(rt: ProcessRuntime) -> None:
    sb = await sandbox(rt)
    cid = await run(rt, "pod-1", "c", "sh", "-c", "echo hi; echo oops >&2; exec sleep 30")
    await poll(lambda: _contains(rt, cid, b"oops"))
    assert await log_of(rt, cid) in (b"hi\noops\n", b"oops\nhi\n")
    raw = Path(rt.log_path(cid)).read_bytes().splitlines()
    assert raw[0].split(b" ")[1:3] in ([b"stdout", b"F"], [b"stderr", b"F"])
    status = await rt.container_status(cid)
    assert status.state is ContainerState.RUNNING and status.started_at is not None

    out: list[bytes] = []

    async def sink(data: bytes) -> None:
        out.append(data)

    code = await rt.exec(cid, ["sh", "-c", "echo $POD_IP $HOSTNAME; exit 3"], stdout=sink)
    assert code == 3 and b"".join(out) == f"{sb.ip} name-pod-1\n".encode()
    with pytest.raises(ExecError, match='exec: "nosuch": executable file not found'):
        await rt.exec(cid, ["nosuch"])
    result = await rt.exec_sync(cid, ["sleep", "10"], timeout=0.2)
    assert result.timed_out
    stats = await rt.stats(cid)
    assert stats is not None and stats.memory_working_set_bytes > 0

    await rt.stop_container(cid, 5)
    status = await rt.container_status(cid)
    assert status.state is ContainerState.EXITED
    assert (status.exit_code, status.reason) == (143, "Error")  # SIGTERM
    with pytest.raises(ExecError):
        await rt.exec(cid, ["true"])


async def _contains(rt: ProcessRuntime, cid: str, text: bytes) -> bool:
    return text in await log_of(rt, cid)


async def test_exit_codes_and_reasons(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    ok = await run(rt, "pod-1", "ok", "true")
    bad = await run(rt, "pod-1", "bad", "sh", "-c", "exit 4")
    assert ((await exited(rt, ok)).exit_code, (await exited(rt, ok)).reason) == (0, "Completed")
    assert ((await exited(rt, bad)).exit_code, (await exited(rt, bad)).reason) == (4, "Error")


async def test_a_command_that_does_not_exist_is_a_start_error(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    cid = await rt.create_container("pod-1", ContainerConfig(name="c", image="busybox",
                                                             command=("no-such-command",)))
    with pytest.raises(StartError, match='exec: "no-such-command": executable file not found'):
        await rt.start_container(cid)
    status = await rt.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 128,
                                                               "StartError")


async def test_a_started_container_is_recorded_even_if_its_state_cannot_be_read(
        rt: ProcessRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    # what the chaos run saw: a stray close (uvloop's pipe transport) made reading state.json
    # fail with EBADF just after the shim had started the container; the start raised, the
    # container ran on unrecorded, and the pod worker started a second copy beside it
    from node.runtime import supervision

    real = supervision.read_json

    def flaky(path: str) -> dict[str, Any] | None:
        if path.endswith("state.json"):
            raise OSError(9, "Bad file descriptor")
        return real(path)

    monkeypatch.setattr(supervision, "read_json", flaky)
    await sandbox(rt)
    cid = await run(rt, "pod-1", "c", "sleep", "30")
    status = await rt.container_status(cid)
    assert status.state is ContainerState.RUNNING
    with pytest.raises(ContainerAlreadyRunning):  # no second copy beside it
        await run(rt, "pod-1", "c", "sleep", "30")
    await rt.stop_container(cid, 5)  # and it can be stopped: its pid is known
    assert (await rt.container_status(cid)).state is ContainerState.EXITED


async def test_an_unknown_image_cannot_be_pulled(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    with pytest.raises(ImageNotFound):
        await rt.pull_image("example.com/no/such:1")
    with pytest.raises(ImageNotFound):
        await rt.create_container("pod-1", ContainerConfig(name="c", image="nope:1"))
    assert await rt.list_containers("pod-1") == []


async def test_a_new_runtime_readopts_running_containers(runtimes: Factory) -> None:
    first = await runtimes()
    await sandbox(first)
    keep = await run(first, "pod-1", "keep", "sleep", "30")
    lose = await run(first, "pod-1", "lose", "sleep", "30")
    await first.close()  # the agent goes away; its containers do not
    state = json.loads((Path(first.root) / "pods/pod-1/containers" / lose /
                        "state.json").read_text())
    os.kill(state["pid"], signal.SIGKILL)  # dies while no agent is watching
    second = await runtimes()
    assert (await second.container_status(keep)).state is ContainerState.RUNNING
    status = await exited(second, lose)
    assert (status.exit_code, status.reason) == (137, "Error")  # recorded by its shim
    with pytest.raises(ContainerAlreadyRunning):
        await second.create_container("pod-1", ContainerConfig(name="keep", image="busybox",
                                                               attempt=1))
    await second.start_container(keep)  # idempotent: still the one process
    assert len([c for c in await second.list_containers() if c.name == "keep"]) == 1
    await second.stop_container(keep, 5)
    assert (await second.container_status(keep)).exit_code == 143
    sb = await second.pod_sandbox("pod-1")
    assert sb is not None and sb.ip == (await first.pod_sandbox("pod-1")).ip  # type: ignore


async def test_orphans_are_reaped(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    # inside the container: an orphaned grandchild is reaped by the container's shim
    cid = await run(rt, "pod-1", "c", "sh", "-c", "(sleep 0.2 &); exec sleep 30")
    status = json.loads((Path(rt.root) / "pods/pod-1/containers" / cid / "state.json")
                        .read_text())

    async def no_zombies_under_shim() -> bool:
        table = procfs.process_table()
        below = procfs.subtree(table, [status["shim_pid"]]) - {status["shim_pid"]}
        return len(below) == 1 and all(table[p].state != "Z" for p in below)

    await poll(no_zombies_under_shim)
    # an exec's background job outlives the exec: it is re-parented to the agent and reaped
    out: list[bytes] = []

    async def sink(data: bytes) -> None:
        out.append(data)

    assert await rt.exec(cid, ["sh", "-c", "sleep 0.3 & echo $!"], stdout=sink) == 0
    orphan = int(b"".join(out))

    async def orphan_gone() -> bool:
        return procfs.proc_info(orphan) is None

    await poll(orphan_gone)
    assert rt.reaper.reaped_orphans >= 1


async def test_attach_feeds_stdin_once_and_streams_output(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    cid = await run(rt, "pod-1", "c", "sh", "-c", "read line; echo got $line", stdin=True,
                    stdin_once=True)
    stdin = asyncio.StreamReader()
    stdin.feed_data(b"hello\n")
    stdin.feed_eof()
    out: list[bytes] = []

    async def sink(data: bytes) -> None:
        out.append(data)

    await asyncio.wait_for(rt.attach(cid, stdin=stdin, stdout=sink), 10)
    assert b"".join(out) == b"got hello\n"
    assert (await exited(rt, cid)).exit_code == 0
    assert await log_of(rt, cid) == b"got hello\n"


async def test_exec_with_a_terminal(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    cid = await run(rt, "pod-1", "c", "sleep", "30")
    out: list[bytes] = []

    async def sink(data: bytes) -> None:
        out.append(data)

    code = await rt.exec(cid, ["sh", "-c", "tty; exit 2"], stdout=sink, tty=True)
    assert code == 2 and b"/dev/pts/" in b"".join(out)


async def test_nginx_serves_on_its_pod_ip(rt: ProcessRuntime) -> None:
    sb = await sandbox(rt, volumes=(VolumeContent("html", "configMap", (
        VolumeFile("hello.html", b"<p>from a configmap</p>"),)),))
    await run(rt, "pod-1", "web", image="nginx:1.27", ports=(ContainerPort(80),),
              mounts=(Mount("/usr/share/nginx/html", sb.volume_paths["html"]),))

    async def get(path: str) -> bytes:
        try:
            reader, writer = await rt.port_forward("pod-1", 80)
        except OSError:
            return b""
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data

    page = await poll(lambda: get("/"))
    assert page.startswith(b"HTTP/1.1 200 OK") and b"Welcome to nginx!" in page
    assert b"from a configmap" in await get("/hello.html")
    assert (await get("/healthz")).startswith(b"HTTP/1.1 200")
    assert (await get("/missing")).startswith(b"HTTP/1.1 404")
    if os.geteuid() == 0:  # as root it binds port 80 of its own address
        _, writer = await asyncio.open_connection(sb.ip, 80)
        writer.close()


async def test_volume_paths_are_translated_for_the_process(rt: ProcessRuntime) -> None:
    sb = await sandbox(rt, volumes=(VolumeContent("cfg", "configMap",
                                                  (VolumeFile("key", b"value"),)),))
    cid = await run(rt, "pod-1", "c", "sh", "-c", "cat /etc/config/key; echo; pwd",
                    mounts=(Mount("/etc/config", sb.volume_paths["cfg"]),),
                    working_dir="/app")
    await exited(rt, cid)
    lines = (await log_of(rt, cid)).decode().splitlines()
    assert lines[0] == "value"
    assert lines[1] == str(Path(rt.root) / "pods/pod-1/root/app")  # never the host's /app


async def test_previous_instance_log_stays_readable(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    first = await run(rt, "pod-1", "c", "echo", "attempt zero")
    await exited(rt, first)
    second = await run(rt, "pod-1", "c", "echo", "attempt one", attempt=1)
    await exited(rt, second)
    assert await log_of(rt, first) == b"attempt zero\n"
    assert await log_of(rt, second, tail_lines=1) == b"attempt one\n"
    assert rt.log_path(first) != rt.log_path(second)
    await rt.remove_container(first)
    assert not Path(rt.log_path(second).replace("1.log", "0.log")).exists()


@pytest.mark.integration
async def test_memory_limit_is_enforced(rt: ProcessRuntime) -> None:
    await sandbox(rt)
    cid = await run(rt, "pod-1", "hog", sys.executable, "-c",
                    "b = bytearray(512 << 20); print(len(b))",
                    resources=Resources(memory_limit_bytes=64 << 20))
    status = await exited(rt, cid)
    assert status.exit_code != 0
    if rt._cgroups is not None:
        assert (status.exit_code, status.reason) == (137, "OOMKilled")


async def test_exec_terminal_resizes(rt: ProcessRuntime) -> None:
    from control.api.streamproto.channels import TerminalSize

    await sandbox(rt)
    cid = await run(rt, "pod-1", "c", "sleep", "30")
    out: list[bytes] = []

    async def sink(data: bytes) -> None:
        out.append(data)

    async def sizes() -> AsyncIterator[TerminalSize]:
        yield TerminalSize(width=100, height=40)

    code = await rt.exec(cid, ["sh", "-c", "sleep 0.3; stty size"], stdout=sink, tty=True,
                         resize=sizes())
    assert code == 0 and b"40 100" in b"".join(out)
