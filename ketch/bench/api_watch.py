"""Watch fan-out of `ketch bench api`: N long-lived watches, a steady stream of writes, and how
late, how often and whether each write reached every watcher.

Flow: namespace ``benchw`` gets `TARGETS` ConfigMaps (the objects written) and then one
``sentinel`` ConfigMap; every watch starts at the resourceVersion before the sentinel, so its
first event is the sentinel's ADDED and, once that arrives, the watch is registered in the
apiserver's watch cache and will see every later write.  Then ``events`` merge-patches go out
open-loop at ``rate``/s, round-robin over the targets; each answer gives the write's
resourceVersion.  Watchers stamp every line on arrival (they only pick the resourceVersion out of
the line, so the client parses as little as possible) and `tally` matches arrivals to writes.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from control.client import MERGE, ApiClient
from ketch.bench.api_load import ensure_namespace
from ketch.bench.api_report import WatchResult, latency
from ketch.bench.cpu import GroupCpu

__all__ = ["TARGETS", "Tally", "WatchSettings", "parse_event", "run_watch", "tally"]

WATCH_NS = "benchw"
TARGETS = 64
_BASE = f"/api/v1/namespaces/{WATCH_NS}/configmaps"
_RV = re.compile(rb'"resourceVersion":"(\d+)"')
_MAX_ERRORS = 5
Progress = Callable[[str], None]


@dataclass(frozen=True)
class WatchSettings:
    """The fan-out's shape: ``watchers`` streams, ``events`` writes at ``rate``/s; after the last
    write answers, the deliveries still in flight get time (see ``drain``)."""

    watchers: int = 1000
    events: int = 200
    rate: float = 50.0
    drain: float = 10.0
    """Deliveries still missing after this long without any arriving are lost."""
    max_drain: float = 120.0
    """…and after this long in any case."""
    connect_parallel: int = 64

    @property
    def establish_timeout(self) -> float:
        return 60.0 + 0.05 * self.watchers


def parse_event(line: bytes) -> tuple[str, int]:
    """(type, resourceVersion) of one watch line, reading no more than it must.

    The object's metadata.resourceVersion is the first ``"resourceVersion"`` key in a ConfigMap
    event line (managedFields and data, which precede or follow it, carry none).  Raises
    ValueError for an ERROR event or a line without one."""
    if line.startswith(b'{"type":"ERROR"'):
        raise ValueError(f"watch ERROR event: {line[:300]!r}")
    m = _RV.search(line)
    if m is None:
        raise ValueError(f"watch line without resourceVersion: {line[:200]!r}")
    typ = line[9:line.index(b'"', 9)].decode() if line.startswith(b'{"type":"') else "?"
    return typ, int(m.group(1))


@dataclass(frozen=True)
class Tally:
    after_response: list[float]
    after_send: list[float]
    lost: int
    duplicated: int
    unexpected: int


def tally(writes: Mapping[int, tuple[float, float]],
          arrivals: Sequence[Sequence[tuple[int, float]]]) -> Tally:
    """Match each watcher's ``arrivals`` ((rv, receive time) in arrival order) with ``writes``
    (rv → (send time, response time), one clock).

    Every watcher should receive every write once: a write missing from a watcher's arrivals
    is lost, each arrival of a write after its first is duplicated, an arrival of an rv not in
    ``writes`` is unexpected (and has no latency).  Latencies are of first arrivals."""
    after_response: list[float] = []
    after_send: list[float] = []
    lost = duplicated = unexpected = 0
    for seen in arrivals:
        got: set[int] = set()
        for rv, t in seen:
            w = writes.get(rv)
            if w is None:
                unexpected += 1
            elif rv in got:
                duplicated += 1
            else:
                got.add(rv)
                after_send.append(t - w[0])
                after_response.append(t - w[1])
        lost += len(writes) - len(got)
    return Tally(after_response, after_send, lost, duplicated, unexpected)


@dataclass
class _Watch:
    """One watcher's state, written only by its own task."""

    arrivals: list[tuple[int, float]] = field(default_factory=list)
    established: bool = False
    error: str | None = None


async def _follow(client: ApiClient, server: int, start_rv: int, sentinel: int,
                  state: _Watch, ready: Callable[[], None]) -> None:
    """Stream one watch into ``state`` until cancelled; call ``ready`` once the sentinel is in
    (or the watch failed).  Never raises anything but CancelledError: a failure is recorded."""
    params = {"watch": "true", "resourceVersion": str(start_rv), "timeoutSeconds": "3600"}
    try:
        resp = await client.open_stream(_BASE, params, server=server, raise_for_status=False)
        async with resp:
            if resp.status != 200:
                raise RuntimeError(f"watch answered {resp.status}: {(await resp.read())[:200]!r}")
            while True:
                line = await resp.content.readline()
                t = time.perf_counter()
                if not line:
                    raise RuntimeError("the apiserver ended the watch stream")
                _, rv = parse_event(line)
                if rv == sentinel and not state.established:
                    state.established = True
                    ready()
                else:
                    state.arrivals.append((rv, t))
    except Exception as exc:  # noqa: BLE001 - a failed watch is a figure, not a crash
        state.error = f"{type(exc).__name__}: {exc}"[:300]
        if not state.established:
            ready()


async def _setup(client: ApiClient) -> tuple[int, int]:
    """The targets and the sentinel: (rv to start watches at, the sentinel's rv)."""
    await ensure_namespace(client, WATCH_NS)
    start = 0
    for n in range(TARGETS):
        out = await client.request("POST", _BASE, body={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"w-{n}"},
            "data": {"seq": "-1"}})
        start = max(start, int(out["metadata"]["resourceVersion"]))
    out = await client.request("POST", _BASE, body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sentinel"}})
    return start, int(out["metadata"]["resourceVersion"])


async def _write_all(client: ApiClient, s: WatchSettings) -> tuple[dict[int, tuple[float, float]],
                                                                      list[str]]:
    """``s.events`` merge-patches, the i-th sent at start + i / rate whatever the previous
    ones are doing (open loop); rv → (send, response) of each answered one, and the errors."""
    writes: dict[int, tuple[float, float]] = {}
    errors: list[str] = []

    async def one(i: int) -> None:
        sent = time.perf_counter()
        try:
            out = await client.request("PATCH", f"{_BASE}/w-{i % TARGETS}",
                                       body={"data": {"seq": str(i)}}, content_type=MERGE)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        writes[int(out["metadata"]["resourceVersion"])] = (sent, time.perf_counter())

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(s.events):
            delay = began + i / s.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(one(i))
    return writes, errors


async def _until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _drain(states: Sequence[_Watch], expected: int, s: WatchSettings) -> None:
    """Wait until every live watcher has ``expected`` arrivals, until nothing arrived for
    ``s.drain`` seconds, or ``s.max_drain`` seconds passed, whichever comes first."""
    began = last_change = time.monotonic()
    last_total = -1
    while time.monotonic() - began < s.max_drain:
        live = [w for w in states if w.established and not w.error]
        if all(len(w.arrivals) >= expected for w in live):
            return
        total = sum(len(w.arrivals) for w in live)
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > s.drain:
            return
        await asyncio.sleep(0.05)


async def run_watch(client: ApiClient, s: WatchSettings, *, cpu: GroupCpu,
                    progress: Progress) -> WatchResult:
    """Open ``s.watchers`` watches (spread over the client's apiservers other than the
    writer's first one, when there are several), write, tally.

    CPU is measured from the first write until every delivery arrived (or the drain ended).
    Watches that fail are reported in ``watcher_errors``; the run itself only raises if the
    setup writes fail."""
    start_rv, sentinel = await _setup(client)
    states = [_Watch() for _ in range(s.watchers)]
    gate = asyncio.Semaphore(s.connect_parallel)
    opened = time.perf_counter()

    async def watcher(j: int) -> None:
        await gate.acquire()
        released = False

        def ready() -> None:
            nonlocal released
            if not released:
                released = True
                gate.release()

        # With several apiservers the writes go through the first and the watches are
        # spread over the others, so the writer is not queued behind the fan-out.
        n = len(client.config.servers)
        server = j if n < 2 else 1 + j % (n - 1)
        await _follow(watches, server, start_rv, sentinel, states[j], ready)

    def settled() -> bool:
        return all(w.established or w.error for w in states)

    # The watches get their own connections, so their long-lived streams never take a slot
    # the writes need.
    watches = ApiClient(client.config, retries=False, max_connections=s.watchers + 1,
                        timeout=30.0, attempt_timeout=30.0)
    async with watches, asyncio.TaskGroup() as group:
        tasks = [group.create_task(watcher(j)) for j in range(s.watchers)]
        try:
            progress(f"watch: opening {s.watchers} watches")
            await _until(settled, s.establish_timeout)
            establish_s = time.perf_counter() - opened
            live = sum(w.established and not w.error for w in states)
            progress(f"watch: {live}/{s.watchers} established in {establish_s:.1f} s; "
                     f"writing {s.events} events at {s.rate:g}/s")
            cpu.start()
            first_sent = time.perf_counter()
            writes, write_errors = await _write_all(client, s)
            progress(f"watch: {len(writes)} writes answered ({len(write_errors)} failed); "
                     "waiting for the deliveries")
            await _drain(states, len(writes), s)
            use = cpu.stop()
        finally:
            for t in tasks:
                t.cancel()
    got = tally(writes, [w.arrivals for w in states if w.established])
    errors = list(dict.fromkeys(w.error for w in states if w.error))[:_MAX_ERRORS]
    errors += [f"write: {e}" for e in write_errors[:_MAX_ERRORS]]
    return WatchResult(
        watchers=s.watchers, established=sum(w.established for w in states),
        establish_s=establish_s, events=len(writes), write_errors=len(write_errors),
        rate=s.rate, after_response=latency(got.after_response),
        after_send=latency(got.after_send), lost=got.lost, duplicated=got.duplicated,
        unexpected=got.unexpected,
        delivery_s=max((t for w in states for _, t in w.arrivals), default=math.nan) - first_sent,
        watcher_errors=tuple(errors), cpu=use)
