"""The CRUD phases of `ketch bench api`: closed-loop create/get/list/update/patch/delete of
ConfigMaps through the apiserver, one verb at a time at each concurrency.

Objects live in namespace ``bench``: every create adds a name to the pool that the later
phases read, update, patch and finally delete (verb-major order, so the pool is as large as all
create phases made it).  Lists read namespace ``benchl``, seeded with `LIST_SEED` ConfigMaps so
the list size stays fixed (≤ 500, one page).  Updates are compare-and-swap with the
resourceVersion the client last read of that object; each worker owns a disjoint slice of the
pool, so a 409 means the server refused a current resourceVersion — counted apart from errors.
`run_closed_loop` (the same loop as `bench store`) measures every phase.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from control.api.errors import AlreadyExists, Conflict
from control.client import MERGE, ApiClient
from control.client import resources as R
from ketch.bench.api_report import SLOS, PhaseResult
from ketch.bench.cpu import GroupCpu
from ketch.bench.load import LoadResult, Op, run_closed_loop
from ketch.bench.scenarios import describe

__all__ = ["LIST_SEED", "VERBS", "CrudSettings", "PoolExhausted", "run_crud"]

VERBS = tuple(SLOS)
LIST_SEED = 100
NS, LIST_NS = "bench", "benchl"
_BASE = f"/api/v1/namespaces/{NS}/configmaps"
_FILL_CONCURRENCY = 32
Progress = Callable[[str], None]


class PoolExhausted(Exception):
    """A delete found no created object left; the phase stops (not an error of the server)."""


@dataclass(frozen=True)
class CrudSettings:
    """The CRUD load's shape."""

    duration: float = 5.0
    warmup: float = 1.0
    concurrency: tuple[int, ...] = (1, 16, 64, 256)
    value_size: int = 200
    timeout: float = 10.0
    verbs: tuple[str, ...] = VERBS


class _Slots:
    """Per-worker identity inside `run_closed_loop`: each worker task gets slot 0, 1, … on its
    first op and counts its own ops, so worker ``w`` of ``c`` can own names ``w, w + c, …``."""

    def __init__(self) -> None:
        self._by_task: dict[asyncio.Task[object] | None, list[int]] = {}

    def take(self) -> tuple[int, int]:
        """(this worker's slot, how many ops it started before this one)."""
        entry = self._by_task.setdefault(asyncio.current_task(), [len(self._by_task), 0])
        k = entry[1]
        entry[1] += 1
        return entry[0], k


def owned_index(slot: int, k: int, concurrency: int, pool: int) -> int:
    """Index of the ``k``-th object worker ``slot`` of ``concurrency`` touches in a pool of
    ``pool`` names: workers' index sets are disjoint (requires ``pool >= concurrency``)."""
    usable = pool - pool % concurrency
    return (slot + k * concurrency) % usable


class _Crud:
    """The ops of every phase over one client; owns the pool and the last object read of each."""

    def __init__(self, client: ApiClient, settings: CrudSettings) -> None:
        self.client = client
        self.settings = settings
        self.pool: list[str] = []
        self.objects: dict[str, dict[str, object]] = {}
        self._names = itertools.count()
        self._value = ("0123456789" * (settings.value_size // 10 + 1))[: settings.value_size]

    def _body(self, name: str) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {"k": self._value}}

    async def create(self, server: int) -> None:
        name = f"cm-{next(self._names):07d}"
        out = await self.client.request("POST", _BASE, body=self._body(name), server=server)
        self.pool.append(name)
        self.objects[name] = out

    def ops(self, verb: str, conc: int) -> Op:
        """The op of ``verb`` at concurrency ``conc`` (a fresh worker numbering per phase)."""
        slots = _Slots()
        client = self.client

        async def create(i: int) -> None:
            await self.create(slots.take()[0])

        async def get(i: int) -> None:
            slot, _ = slots.take()
            name = self.pool[i % len(self.pool)]
            self.objects[name] = await client.request("GET", f"{_BASE}/{name}", server=slot)

        async def list_(i: int) -> None:
            out = await client.request("GET", f"/api/v1/namespaces/{LIST_NS}/configmaps",
                                       params={"limit": "500"}, server=slots.take()[0])
            if len(out.get("items", ())) != LIST_SEED:
                raise RuntimeError(f"list returned {len(out.get('items', ()))} items, "
                                   f"expected {LIST_SEED}")

        async def update(i: int) -> None:
            slot, k = slots.take()
            name = self.pool[owned_index(slot, k, conc, len(self.pool))]
            obj = dict(self.objects[name])
            obj["data"] = {"k": self._value, "n": str(i)}
            try:
                self.objects[name] = await client.request("PUT", f"{_BASE}/{name}", body=obj,
                                                          server=slot)
            except (Conflict, AlreadyExists):
                self.objects[name] = await client.request("GET", f"{_BASE}/{name}",
                                                          server=slot)
                raise

        async def patch(i: int) -> None:
            slot, k = slots.take()
            name = self.pool[owned_index(slot, k, conc, len(self.pool))]
            self.objects[name] = await client.request(
                "PATCH", f"{_BASE}/{name}", body={"data": {"k": str(i)}},
                content_type=MERGE, server=slot)

        async def delete(i: int) -> None:
            slot, _ = slots.take()
            if not self.pool:
                raise PoolExhausted("every created object is deleted")
            name = self.pool.pop()
            self.objects.pop(name, None)
            await client.request("DELETE", f"{_BASE}/{name}", server=slot)

        table: dict[str, Op] = {"create": create, "get": get, "list": list_, "update": update, "patch": patch,
                 "delete": delete}
        return table[verb]

    async def fill(self, target: int) -> None:
        """Create objects (unmeasured) until the pool holds at least ``target`` names.

        Raises RuntimeError if a minute passes without getting there."""
        stop = asyncio.Event()
        if len(self.pool) >= target:
            return

        async def op(i: int) -> None:
            await self.create(i)
            if len(self.pool) >= target:
                stop.set()

        r = await run_closed_loop(op, concurrency=_FILL_CONCURRENCY, seconds=60.0, stop=stop,
                                  op_timeout=self.settings.timeout)
        if len(self.pool) < target:
            raise RuntimeError(f"could not create {target} objects: {r.errors} errors, e.g. "
                               f"{r.error_samples[:1]}")


async def ensure_namespace(client: ApiClient, name: str) -> None:
    """Create namespace ``name`` unless it exists."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    try:
        await client.create(R.NAMESPACES, body)
    except AlreadyExists:
        pass


async def seed_list_namespace(client: ApiClient) -> None:
    """Namespace ``benchl`` with exactly `LIST_SEED` small ConfigMaps."""
    await ensure_namespace(client, LIST_NS)
    sem = asyncio.Semaphore(_FILL_CONCURRENCY)

    async def one(n: int) -> None:
        async with sem:
            await client.request("POST", f"/api/v1/namespaces/{LIST_NS}/configmaps", body={
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"l-{n:03d}"},
                "data": {"k": "v" * 200}})

    async with asyncio.TaskGroup() as group:
        for n in range(LIST_SEED):
            group.create_task(one(n))


def _kinds(r: LoadResult, *excs: type[Exception]) -> int:
    kinds = dict(r.error_kinds)
    return sum(kinds.get(e.__name__, 0) for e in excs)


async def _phase(crud: _Crud, verb: str, conc: int, cpu: GroupCpu) -> PhaseResult:
    s = crud.settings
    stop = asyncio.Event()
    op = crud.ops(verb, conc)

    async def measured(i: int) -> object:
        try:
            return await op(i)
        except PoolExhausted:
            stop.set()
            raise

    cpu.start()
    r = await run_closed_loop(measured, concurrency=conc, seconds=s.duration, warmup=s.warmup,
                              op_timeout=s.timeout * 2, stop=stop)
    use = cpu.stop()
    return PhaseResult(verb=verb, load=r, conflicts=_kinds(r, Conflict, AlreadyExists),
                       exhausted=_kinds(r, PoolExhausted),
                       items=LIST_SEED if verb == "list" else 0, cpu=use)


def _delete_reserve(results: Sequence[PhaseResult], conc: int, s: CrudSettings) -> int:
    """Objects a delete phase at ``conc`` should find: twice what create made at that
    concurrency in as long (deletes are not slower than creates), at least ``conc``."""
    rate = next((r.load.ops_per_s for r in results
                 if r.verb == "create" and r.load.concurrency == conc), math.nan)
    if math.isnan(rate):
        rate = max((r.load.ops_per_s for r in results if r.verb == "create"), default=100.0)
    return max(conc, math.ceil(2 * rate * (s.duration + s.warmup)))


async def run_crud(client: ApiClient, settings: CrudSettings, *, cpu: GroupCpu,
                   progress: Progress) -> list[PhaseResult]:
    """Every verb of ``settings.verbs`` at every concurrency, verb-major, into a list of
    results in that order.  Before reads and writes of existing objects the pool is filled to
    at least the largest concurrency, so every worker owns objects of its own."""
    await ensure_namespace(client, NS)
    if "list" in settings.verbs:
        await seed_list_namespace(client)
    crud = _Crud(client, settings)
    results: list[PhaseResult] = []
    top = max(settings.concurrency)
    for verb in settings.verbs:
        for conc in settings.concurrency:
            if verb == "delete":
                await crud.fill(_delete_reserve(results, conc, settings))
            elif verb in ("get", "update", "patch"):
                await crud.fill(top)
            progress(f"crud: {verb} c={conc} for {settings.duration:g} s "
                     f"({len(crud.pool)} objects)")
            r = await _phase(crud, verb, conc, cpu)
            progress(f"crud: {verb} {describe(r.load)}")
            results.append(r)
    return results
