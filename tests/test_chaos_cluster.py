"""The whole-cluster chaos run (``ketch chaos run --cluster``) for real: a short mixed run over
every component must find nothing, and each deliberately broken component must be caught by
the checker that exists to catch it.  Plus, in process, the proxy mode the expectations proof
needs (watches that lag while requests are answered at once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.cluster_runner import run_cluster
from chaos.proxy import PASS, LagStreams, LinkProxy
from chaos.report import render_text, write_report

SMOKE_SEED = 20261205


def _verdicts(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.name: c.verdict for c in result.checks}


# --- in process: LagStreams ------------------------------------------------------------------


async def test_lag_streams_delays_what_streams_not_what_answers() -> None:
    """Upstream pushes an unsolicited chunk on one connection (a watch event), then answers a
    request on another: with LagStreams the answer overtakes the pushed chunk, which still
    arrives, in order; healed, a push passes at once again."""
    pushers: list[asyncio.StreamWriter] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line == b"watch\n":
                pushers.append(writer)
            else:
                writer.write(b"answer:" + line)
                await writer.drain()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    proxy = LinkProxy("test", ("127.0.0.1", server.sockets[0].getsockname()[1]))
    await proxy.start()
    try:
        w_reader, w_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        w_writer.write(b"watch\n")
        await w_writer.drain()
        async with asyncio.timeout(10):
            while not pushers:
                await asyncio.sleep(0.01)
        proxy.set(backward=LagStreams(30.0, quiet=0.05))
        await asyncio.sleep(0.2)  # the watch's GET is long past: what comes now streams
        pushers[0].write(b"event-1\n")
        await pushers[0].drain()
        r_reader, r_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        r_writer.write(b"get\n")
        await r_writer.drain()
        async with asyncio.timeout(10):
            assert await r_reader.readline() == b"answer:get\n"
        late = asyncio.ensure_future(w_reader.readline())
        await asyncio.sleep(0.3)
        assert not late.done()  # the event is still held back
        late.cancel()
        proxy.set(backward=PASS)  # chunks already queued keep their due time and order
        for w in (w_writer, r_writer):
            w.close()
        r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
        w2.write(b"watch\n")
        await w2.drain()
        async with asyncio.timeout(10):
            while len(pushers) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            pushers[1].write(b"event-2\n")
            await pushers[1].drain()
            assert await r2.readline() == b"event-2\n"
        w2.close()
    finally:
        await proxy.stop()
        server.close()
        for w in pushers:
            w.close()
        await server.wait_closed()


# --- real runs -------------------------------------------------------------------------------


@pytest.mark.integration
async def test_cluster_smoke_mixed_faults_find_no_violation(tmp_path: Path) -> None:
    result = await run_cluster(scenario="all", duration=45, seed=SMOKE_SEED, workdir=tmp_path,
                               progress=lambda _: None)
    write_report(result, tmp_path / "report")
    text = render_text(result)
    assert result.ok, text
    assert all(v == "ok" for v in _verdicts(result).values()), text
    assert len(result.history.faults) >= 4, text
    assert (tmp_path / "report" / "timeline.html").stat().st_size > 1000


# Each proof: one fault, the one workload action that gives the broken component its chance,
# and a short settle (a broken cluster may never converge; the proof needs no more).
PROOFS = [
    pytest.param({"controller-manager": "skip-expectations"}, "lag-controller-manager",
                 ("scale-replicaset",), "replica_surge", id="skip-expectations"),
    pytest.param({"controller-manager": "keep-leading"}, "pause-controller-manager",
                 ("roll-deployment",), "one_active_controller_manager", id="keep-leading"),
    pytest.param({"node": "keep-replaced-pods"}, "kill-pod", ("roll-statefulset",),
                 "statefulset_at_most_one", id="keep-replaced-pods"),
]


@pytest.mark.integration
@pytest.mark.parametrize("sabotage, scenario, actions, caught_by", PROOFS)
async def test_a_broken_component_is_caught_by_the_right_checker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sabotage: dict[str, str], scenario: str,
    actions: tuple[str, ...], caught_by: str,
) -> None:
    monkeypatch.setenv("KETCH_ALLOW_SABOTAGE", "1")
    result = await run_cluster(scenario=scenario, duration=1, seed=3, workdir=tmp_path,
                               progress=lambda _: None, sabotage=sabotage, actions=actions,
                               settle=15.0)
    text = render_text(result)
    assert len(result.history.faults) == 1, text
    assert _verdicts(result)[caught_by] == "violation", text


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment names ``text`` (a run's workdir:
    every component, agent, shim and pod process of a run carries it in one or the other)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() or needle in (
                    entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


@pytest.mark.integration
def test_a_killed_cluster_run_stops_every_process_it_started(tmp_path: Path) -> None:
    """SIGTERM to ``ketch chaos run --cluster`` (what ``kill`` or a CI timeout sends) unwinds
    the run: no component, agent or pod process outlives it.  It once left them all."""
    report = tmp_path / "run"
    out = tmp_path / "out.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ketch", "chaos", "run", "--cluster", "--duration", "120",
             "--seed", "1", "--report", str(report)], stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while b"faults begin" not in out.read_bytes():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        assert _processes_mentioning(str(report)), "the run's processes were not found"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 128 + signal.SIGTERM, out.read_text()
        deadline = time.monotonic() + 10  # a SIGKILLed process may take a moment to be reaped
        while (left := _processes_mentioning(str(report))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], out.read_text()
        assert b"no verdict" in out.read_bytes()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _processes_mentioning(str(report)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
