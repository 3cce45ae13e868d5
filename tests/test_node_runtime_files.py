"""The process runtime's file-level pieces: CRI logs (writer, rotation, reader with tail,
since, timestamps, limit and follow across rotation), volumes (resolution and the atomic
layout), pod IP allocation, the image catalog."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import pytest

from node.runtime.api import ImageNotFound, VolumeContent, VolumeFile
from node.runtime.downward import PodFacts
from node.runtime.images import ImageCatalog, normalize_image
from node.runtime.logs import (
    LogOptions,
    LogWriter,
    format_timestamp,
    log_files,
    parse_record,
    parse_timestamp_ns,
    read_lines,
    read_log,
)
from node.runtime.network import AddressExhausted, PodIPAllocator
from node.runtime.volumes import VolumeSourceMissing, resolve_volumes, write_volume
from tests.nodefakes import Sources, container, pod

# --- logs ----------------------------------------------------------------------------------


class Ticks:
    """A nanosecond clock that moves one second per record."""

    def __init__(self) -> None:
        self.ns = 1_785_000_000 * 10**9

    def __call__(self) -> int:
        self.ns += 10**9
        return self.ns


async def collect(path: str, options: LogOptions | None = None) -> bytes:
    return b"".join([chunk async for chunk in read_log(path, options or LogOptions())])


def test_records_are_cri_lines(tmp_path: Path) -> None:
    w = LogWriter(str(tmp_path / "0.log"), clock_ns=Ticks())
    w.write("stdout", b"one\ntwo\npart")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"ial\n")
    w.close()
    records = [parse_record(line) for line in (tmp_path / "0.log").read_bytes().splitlines()]
    assert [(r[1], r[2], r[3]) for r in records if r] == [
        ("stdout", True, b"one"), ("stdout", True, b"two"), ("stderr", True, b"oops"),
        ("stdout", True, b"partial")]
    ts = records[0][0] if records[0] else b""
    assert ts == format_timestamp(1_785_000_001 * 10**9).encode()
    assert ts.endswith(b".000000000Z") and parse_timestamp_ns(ts) == 1_785_000_001 * 10**9


def test_unfinished_lines_become_partial_records(tmp_path: Path) -> None:
    w = LogWriter(str(tmp_path / "0.log"), clock_ns=Ticks())
    w.write("stdout", b"prompt> ")
    assert w.flush_idle(now=1e12) is None  # long idle: written as P
    w.write("stdout", b"x" * 40000 + b"\n")  # too long for one record: P, P, F
    w.close()
    tags = [line.split(b" ")[2] for line in (tmp_path / "0.log").read_bytes().splitlines()]
    assert tags == [b"P", b"P", b"P", b"F"]


async def test_rotation_keeps_max_files_and_reading_spans_them(tmp_path: Path) -> None:
    path = str(tmp_path / "0.log")
    w = LogWriter(path, max_size=1024, max_files=3, clock_ns=Ticks())
    for i in range(100):
        w.write("stdout", f"line {i:03d} {'x' * 40}\n".encode())
    w.close()
    assert [os.path.basename(f) for f in log_files(path)] == ["0.log.2", "0.log.1", "0.log"]
    assert all(os.path.getsize(f) <= 1024 for f in log_files(path))
    text = (await collect(path)).decode().splitlines()
    numbers = [int(line.split()[1]) for line in text]
    assert numbers == list(range(numbers[0], 100))  # the oldest rotated away, none lost after
    tail = (await collect(path, LogOptions(tail_lines=15))).decode().splitlines()
    assert [int(line.split()[1]) for line in tail] == list(range(85, 100))  # spans 3 files


async def test_since_timestamps_and_limit(tmp_path: Path) -> None:
    path = str(tmp_path / "0.log")
    ticks = Ticks()
    w = LogWriter(path, clock_ns=ticks)
    for i in range(5):
        w.write("stdout", f"l{i}\n".encode())
    w.close()
    since = dt.datetime.fromtimestamp(1_785_000_003, dt.UTC)
    assert await collect(path, LogOptions(since=since)) == b"l2\nl3\nl4\n"
    stamped = (await collect(path, LogOptions(tail_lines=1, timestamps=True))).decode()
    assert stamped == f"{format_timestamp(1_785_000_005 * 10**9)} l4\n"
    assert await collect(path, LogOptions(limit_bytes=7)) == b"l0\nl1\nl"
    assert await collect(path, LogOptions(tail_lines=0)) == b""
    assert await collect(str(tmp_path / "missing.log")) == b""


async def test_follow_continues_across_rotation(tmp_path: Path) -> None:
    path = str(tmp_path / "0.log")
    w = LogWriter(path, max_size=2048, max_files=2, clock_ns=Ticks())
    w.write("stdout", b"first\n")
    running = True

    async def is_running() -> bool:
        return running

    got: list[bytes] = []

    async def follow() -> None:
        async for line in read_lines(path, follow=True, running=is_running,
                                     poll_seconds=0.005):
            got.append(line.data)

    task = asyncio.get_running_loop().create_task(follow())
    deadline = asyncio.get_running_loop().time() + 10
    while not got:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0)
    sent = [b"first\n"]
    for i in range(60):  # 60 x ~70 bytes: rotates twice while the reader follows
        line = f"more {i:02d} {'y' * 50}\n".encode()
        w.write("stdout", line)
        sent.append(line)
        if i % 10 == 0:
            while len(got) < len(sent):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0)
    w.close()
    running = False
    await asyncio.wait_for(task, 10)
    assert got == sent


# --- volumes -------------------------------------------------------------------------------


async def test_volumes_resolve_from_the_cluster_objects() -> None:
    sources = Sources()
    sources.configmaps[("default", "cm")] = {"data": {"a": "1", "b": "2"},
                                             "binaryData": {"bin": "AAE="}}
    sources.secrets[("default", "s")] = {"data": {"pw": "aHVudGVyMg=="}}
    spec = pod(containers=[container("c", resources={"limits": {"memory": "64Mi"}})], volumes=[
        {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a", "path": "x/a.txt",
                                                                "mode": 0o600}]}},
        {"name": "sec", "secret": {"secretName": "s"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c",
                                                 "resource": "limits.memory",
                                                 "divisor": "1Mi"}}]}},
        {"name": "kube-api-access-x", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"configMap": {"name": "cm", "items": [{"key": "b", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "host", "hostPath": {"path": "/tmp"}}])
    volumes = {v.name: v for v in await resolve_volumes(spec, sources, PodFacts())}
    assert set(volumes) == {"cfg", "sec", "scratch", "info", "kube-api-access-x"}
    assert volumes["cfg"].files == (VolumeFile("x/a.txt", b"1", 0o600),)
    assert volumes["sec"].files == (VolumeFile("pw", b"hunter2", 0o644),)
    assert volumes["scratch"].kind == "emptyDir"
    assert {f.path: f.data for f in volumes["info"].files} == {"name": b"p", "mem": b"64"}
    assert {f.path: f.data for f in volumes["kube-api-access-x"].files} == {
        "token": b"token-for-p", "ca.crt": b"2", "namespace": b"default"}


@pytest.mark.parametrize(("volume", "message"), [
    pytest.param({"configMap": {"name": "nope"}}, 'configmap "nope" not found', id="cm"),
    pytest.param({"secret": {"secretName": "nope"}}, 'secret "nope" not found', id="secret"),
    pytest.param({"configMap": {"name": "cm", "items": [{"key": "zz", "path": "z"}]}},
                 "configmap references non-existent config key: zz", id="key"),
    pytest.param({"persistentVolumeClaim": {"claimName": "x"}},
                 "volume type persistentVolumeClaim is not supported", id="unsupported"),
])
async def test_missing_volume_sources_are_typed_errors(volume: dict, message: str) -> None:
    sources = Sources()
    sources.configmaps[("default", "cm")] = {"data": {"a": "1"}}
    spec = pod(volumes=[{"name": "v", **volume}])
    with pytest.raises(VolumeSourceMissing) as e:
        await resolve_volumes(spec, sources, PodFacts())
    assert str(e.value).startswith('MountVolume.SetUp failed for volume "v" : ')
    assert message in str(e.value)
    optional = {k: {**v, "optional": True} for k, v in volume.items()}
    if "persistentVolumeClaim" not in volume:
        assert await resolve_volumes(pod(volumes=[{"name": "v", **optional}]), sources,
                                     PodFacts())


def test_volume_updates_swap_atomically(tmp_path: Path) -> None:
    d = str(tmp_path / "v")
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    write_volume(d, VolumeContent("v", "configMap", (VolumeFile("a", b"1"),
                                                     VolumeFile("sub/b", b"2"))), now=t)
    assert (tmp_path / "v" / "a").read_bytes() == b"1"
    assert (tmp_path / "v" / "sub" / "b").read_bytes() == b"2"
    assert os.readlink(tmp_path / "v" / "a") == "..data/a"
    write_volume(d, VolumeContent("v", "configMap", (VolumeFile("a", b"3"),)),
                 now=t + dt.timedelta(seconds=1))
    assert (tmp_path / "v" / "a").read_bytes() == b"3"
    assert not os.path.lexists(tmp_path / "v" / "sub")
    generations = [e for e in os.listdir(d) if e.startswith("..2026")]
    assert len(generations) == 1
    with pytest.raises(ValueError, match="leaves the volume"):
        write_volume(d, VolumeContent("v", "configMap", (VolumeFile("../x", b""),)), now=t)


# --- network -------------------------------------------------------------------------------


def test_pod_ips_are_stable_persisted_and_released(tmp_path: Path) -> None:
    state = str(tmp_path / "ips.json")
    ips = PodIPAllocator("127.5.0.0/29", state)
    a, b = ips.allocate("a"), ips.allocate("b")
    assert (a, b) == ("127.5.0.2", "127.5.0.3") and ips.allocate("a") == a
    again = PodIPAllocator("127.5.0.0/29", state)  # a restarted agent
    assert again.get("a") == a and again.get("b") == b
    again.release("a")
    assert again.allocate("c") == "127.5.0.4"  # next-fit: a freed address is not reused at once
    assert again.allocate("d") == "127.5.0.5" and again.allocate("e") == "127.5.0.6"
    assert again.allocate("f") == "127.5.0.2"
    with pytest.raises(AddressExhausted):
        again.allocate("g")
    with pytest.raises(ValueError, match="not inside 127.0.0.0/8"):
        PodIPAllocator("10.0.0.0/24", str(tmp_path / "x.json"))


# --- images --------------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "key"), [
    ("busybox", "busybox"), ("busybox:1.36", "busybox"),
    ("docker.io/library/busybox:latest", "busybox"), ("library/nginx", "nginx"),
    ("nginx@sha256:abcd", "nginx"), ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause"),
    ("k8s.gcr.io/pause", "registry.k8s.io/pause"), ("localhost:5000/app:1", "localhost:5000/app"),
])
def test_image_names_normalize(image: str, key: str) -> None:
    assert normalize_image(image) == key


def test_catalog_argv_follows_docker_rules() -> None:
    cat = ImageCatalog(extra={"example.com/tool": ["/bin/echo", "tool"]})
    busybox = cat.resolve("busybox:1.36")
    assert cat.argv(busybox, [], []) == ["sh"]
    assert cat.argv(busybox, ["sleep", "5"], []) == ["sleep", "5"]
    assert cat.argv(busybox, ["sh", "-c"], ["echo hi"]) == ["sh", "-c", "echo hi"]
    nginx = cat.resolve("nginx:1.27")
    assert cat.argv(nginx, ["nginx", "-g", "daemon off;"], [])[:3] == list(
        nginx.entrypoint[:3])
    tool = cat.resolve("example.com/tool:2")
    assert cat.argv(tool, [], ["x"]) == ["/bin/echo", "tool", "x"]
    assert cat.argv(tool, [], []) == ["/bin/echo", "tool"]
    with pytest.raises(ImageNotFound, match="not found"):
        cat.resolve("ghcr.io/someone/else:1")


def test_privileged_ports_move_where_they_cannot_be_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from node.runtime import network

    monkeypatch.setattr(network, "_unprivileged_port_start", lambda: 1024)
    monkeypatch.setattr(network, "can_bind_privileged", lambda: False)
    assert (network.pod_port(80), network.pod_port(8080)) == (10080, 8080)
    monkeypatch.setattr(network, "can_bind_privileged", lambda: True)
    assert network.pod_port(80) == 80
