"""The fuzz run: a real cluster, the generated requests, and the checks.

Apiserver phase — ``ketch up`` (store ×3 + one apiserver; no controllers, scheduler or nodes,
so nothing but the requests changes API objects), a ``fuzz`` namespace with one pooled object
per resource in :data:`~ketch.fuzz.api_cases.POOL`, then every request with bounded
concurrency.  Findings: an answer ≥ 500; a request with no answer in time (hang); the
apiserver process gone or not ready (crash); a refused write to a pooled object that changed
it (checked under a per-object lock, by its resourceVersion); a marked name in the store
whose request was refused.  Memory: the apiserver's RSS after the warm-up and at the end.

Store phase — a fresh three-replica store alone (nothing else writes to it) and the
malformed CBOR of :mod:`~ketch.fuzz.store_cases`.  Findings: an answer ≥ 500, a hang, a
replica gone, and a revision that moved although no write was accepted.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from certs.layout import admin_paths

from .api_cases import FUZZ_NS, POOL, api_requests, pool_item, pool_objects
from .store_cases import WRITES, StoreReq, store_requests
from .wire import Answer, Req, send

__all__ = ["FINDINGS", "Phase", "run_api", "run_store"]

Progress = Callable[[str], None]
MAX_FINDINGS = 50
#: what counts against a run (exit 1); ``no-answer`` and ``504-rv-too-large`` do not
FINDINGS = ("5xx", "hang", "crash", "stored-by-refused")


@dataclass
class Phase:
    """What one phase did and found."""

    name: str
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # finding kind -> how many
    rss_kib: dict[str, tuple[int, int]] = field(default_factory=dict)  # process -> before, after
    notes: list[str] = field(default_factory=list)

    def find(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(f"{kind}: {what}")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "requests": self.requests, "seconds": round(self.seconds, 1),
                "statuses": dict(sorted(self.statuses.items())),
                "families": dict(self.families.most_common()),
                "finding_counts": dict(self.counts), "findings": self.findings,
                "rss_kib": self.rss_kib, "notes": self.notes}


def rss_kib(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def client_ssl(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class _Pool:
    """The pooled objects' last known resourceVersions, one lock each."""

    def __init__(self) -> None:
        self.rv: dict[str, str] = {}
        self.locks: dict[str, asyncio.Lock] = {pool_item(c): asyncio.Lock() for c in POOL}
        self.errors: list[str] = []  # 5xx answers to the pool's own requests

    async def ensure(self, session: aiohttp.ClientSession, base: str, item: str) -> None:
        """Know ``item``'s resourceVersion, recreating it if it was deleted."""
        async with session.get(base + item) as r:
            if r.status == 200:
                self.rv[item] = (await r.json())["metadata"]["resourceVersion"]
                return
        collection = item.rsplit("/", 1)[0]
        obj = dict(pool_objects())[collection]
        async with session.post(base + collection, json=obj) as r:
            body = await r.json()
            if r.status >= 500:
                self.errors.append(f"recreating {item}: {r.status} {body}")
            if r.status == 201:
                self.rv[item] = body["metadata"]["resourceVersion"]
            else:
                self.rv.pop(item, None)  # still being deleted (finalizers): checked by GET


async def _check_pooled(session: aiohttp.ClientSession, base: str, pool: _Pool, req: Req,
                        ans: Answer, phase: Phase) -> None:
    item = req.pooled
    if 200 <= ans.status < 300:
        await pool.ensure(session, base, item)
        return
    before = pool.rv.get(item)
    async with session.get(base + item) as r:
        now = (await r.json())["metadata"]["resourceVersion"] if r.status == 200 else None
    if before is not None and now != before:
        phase.find("stored-by-refused", f"{req.describe()} -> {ans.status} changed {item} "
                   f"(resourceVersion {before} -> {now})")
    if now is None or before is None:
        await pool.ensure(session, base, item)
    else:
        pool.rv[item] = now


def _judge(phase: Phase, req: Req, ans: Answer) -> None:
    phase.requests += 1
    phase.families[req.family] += 1
    phase.statuses[ans.status] += 1
    if ans.hang:
        phase.find("hang", f"{req.describe()}: {ans.error}")
    elif ans.status == 504 and b"ResourceVersionTooLarge" in ans.body:
        # kube-apiserver's own answer for a resourceVersion the server has not reached (after
        # waiting for it): a Timeout clients retry, not a server failure
        phase.counts["504-rv-too-large"] += 1
    elif ans.status >= 500:
        phase.find("5xx", f"{req.describe()} -> {ans.status} {ans.body[:300]!r}")
    elif ans.status == 0 and req.mode != "truncated":
        phase.counts["no-answer"] += 1  # connection refused/reset: a crash shows below
        if phase.counts["no-answer"] <= 5:
            phase.notes.append(f"no answer: {req.describe()}: {ans.error}")


async def _api_phase(base: str, ctx: ssl.SSLContext, total: int, seed: int, concurrency: int,
                     pid: Callable[[], int | None], progress: Progress) -> tuple[Phase,
                                                                                 dict[str, int]]:
    phase = Phase("apiserver")
    statuses: dict[str, int] = {}  # marker -> status
    pool = _Pool()
    conn = aiohttp.TCPConnector(ssl=ctx, limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=conn) as session:
        async with session.post(base + "/api/v1/namespaces", json={
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FUZZ_NS}}) as r:
            assert r.status in (201, 409), await r.text()
        for collection, _ in pool_objects():
            await pool.ensure(session, base, pool_item(collection))
        doc = await _openapi(session, base)
        gen = api_requests(doc, total, seed, progress)
        sem = asyncio.Semaphore(concurrency)
        started, last, warm = time.monotonic(), time.monotonic(), max(200, total // 50)

        async def one(req: Req) -> None:
            try:
                if req.pooled:
                    async with pool.locks[req.pooled]:
                        ans = await send(session, ctx, base, req)
                        if not ans.hang and ans.status and req.method in ("PUT", "PATCH",
                                                                          "DELETE"):
                            await _check_pooled(session, base, pool, req, ans, phase)
                else:
                    ans = await send(session, ctx, base, req)
                _judge(phase, req, ans)
                if req.marker:
                    statuses[req.marker] = ans.status
            finally:
                sem.release()

        async with asyncio.TaskGroup() as tg:
            for i, req in enumerate(gen):
                if req.method == "DELETE" and "{name}" not in req.path and \
                        f"/namespaces/{FUZZ_NS}/" in req.path and \
                        req.path.rstrip("/").rsplit("/", 1)[-1] in _collection_names():
                    # a deletecollection would take the pooled objects with it
                    req.path = req.path.replace(f"/namespaces/{FUZZ_NS}/", "/namespaces/fz-dc/")
                await sem.acquire()
                tg.create_task(one(req))
                if i == warm:
                    phase.rss_kib["apiserver"] = (rss_kib(pid()), 0)
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    progress(f"  apiserver: {phase.requests:,} requests, "
                             f"{sum(phase.counts[k] for k in FINDINGS):,} findings, "
                             f"{phase.requests / (last - started):.0f}/s")
        phase.seconds = time.monotonic() - started
    for e in pool.errors:
        phase.find("5xx", e)
    before = phase.rss_kib.get("apiserver", (0, 0))[0]
    phase.rss_kib["apiserver"] = (before, rss_kib(pid()))
    return phase, statuses


def _collection_names() -> set[str]:
    return {c.rsplit("/", 1)[-1] for c in POOL}


async def _openapi(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Every group version's /openapi/v3 document merged into one (schemathesis reads one)."""
    async with session.get(base + "/openapi/v3") as r:
        root = await r.json()
    doc: dict[str, Any] = {"openapi": "3.0.0", "info": {"title": "ketch", "version": "fuzz"},
                           "paths": {}, "components": {"schemas": {}}}
    for entry in root["paths"].values():
        async with session.get(base + entry["serverRelativeURL"]) as r:
            part = await r.json()
        doc["paths"].update(part.get("paths", {}))
        doc["components"]["schemas"].update((part.get("components") or {}).get("schemas", {}))
    return doc


async def _stored_markers(cluster: Any) -> list[str]:
    async with cluster.store.client() as client:
        got = await client.get(b"/registry/", range_end=b"/registry0", keys_only=True)
    keys = [kv["key"] for kv in got.get("kvs", [])]
    return [k.decode(errors="replace") for k in keys]


def run_api(workdir: Path, total: int, seed: int, concurrency: int,
            progress: Progress) -> Phase:
    """The apiserver phase against a fresh ``ketch up`` in ``workdir`` (stopped afterwards)."""
    import re

    from ketch.cluster import Cluster

    cluster = Cluster(workdir / "cluster", port=None, controller_managers=0, schedulers=0,
                      nodes=0)
    cluster.up(progress=lambda m: progress(f"  {m}"))
    try:
        paths = admin_paths(cluster.store.certs_dir)
        ctx = client_ssl(paths.ca, paths.cert, paths.key)

        def pid() -> int | None:
            return cluster.pid("apiserver-1")

        phase, statuses = asyncio.run(_api_phase(cluster.url, ctx, total, seed, concurrency,
                                                 pid, progress))
        if pid() is None:
            phase.find("crash", "the apiserver process is gone")
        else:
            try:
                import urllib.request
                with urllib.request.urlopen(cluster.url + "/readyz", context=ctx,
                                            timeout=10) as r:
                    if r.status != 200:
                        phase.find("crash", f"/readyz answers {r.status}")
            except OSError as e:
                phase.find("crash", f"/readyz: {e}")
        keys = asyncio.run(_stored_markers(cluster))
        marked = 0
        for key in keys:
            for m in re.findall(r"fz[0-9a-f]+z", key):
                marked += 1
                status = statuses.get(m)
                if status is not None and status and not 200 <= status < 300:
                    phase.find("stored-by-refused", f"{key} is stored, but its request got "
                               f"{status}")
        phase.notes.append(f"{marked:,} objects created by accepted fuzz requests were found "
                           f"in the store; each one's request was answered 2xx")
        log = Path(cluster.dir / "apiserver-1" / "apiserver.log")
        if log.exists():
            text = log.read_text(errors="replace")
            # aiohttp's parser refusing raw bytes in a request line (a 400) logs a trace too;
            # what counts is a handler that failed or a response that could not be written
            traces = text.count("internal error serving") + text.count("Unhandled exception")
            if traces:
                phase.find("crash", f"{traces} unhandled errors in {log}")
    finally:
        cluster.down(progress=lambda m: None)
    return phase


async def _store_one(session: aiohttp.ClientSession, base: str, req: StoreReq) -> Answer:
    try:
        async with asyncio.timeout(30):
            async with session.request(req.method, base + req.path, data=req.body,
                                       headers={"Content-Type": "application/cbor"}) as r:
                if req.path == "/v1/watch" and r.status == 200:
                    try:  # a well-formed watch streams until the client leaves
                        async with asyncio.timeout(0.5):
                            await r.content.read(1 << 16)
                    except TimeoutError:
                        pass
                    return Answer(200)
                return Answer(r.status, await r.read())
    except TimeoutError:
        return Answer(0, hang=True, error="no answer within 30 s")
    except (aiohttp.ClientError, OSError) as e:
        return Answer(0, error=f"{type(e).__name__}: {e}")


async def _store_phase(cluster: Any, total: int, seed: int, concurrency: int,
                       progress: Progress) -> Phase:
    phase = Phase("store")
    tls = cluster.client_tls
    ctx = client_ssl(tls.ca, tls.cert, tls.key)
    ctx.check_hostname = False
    async with cluster.client() as client:
        rev_before = (await client.status())["revision"]
    accepted = Counter[str]()
    sem = asyncio.Semaphore(concurrency)
    started, last = time.monotonic(), time.monotonic()
    bases = cluster.client_urls
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:

        async def one(i: int, req: StoreReq) -> None:
            try:
                ans = await _store_one(session, bases[i % len(bases)], req)
                phase.requests += 1
                phase.families[req.family] += 1
                phase.statuses[ans.status] += 1
                if ans.hang:
                    phase.find("hang", f"{req.describe()}: {ans.error}")
                elif ans.status >= 500:
                    phase.find("5xx", f"{req.describe()} -> {ans.status} {ans.body[:200]!r}")
                elif 200 <= ans.status < 300 and req.path in WRITES:
                    accepted[req.path] += 1
            finally:
                sem.release()

        async with asyncio.TaskGroup() as tg:
            for i, req in enumerate(store_requests(total, seed)):
                await sem.acquire()
                tg.create_task(one(i, req))
                if i == max(200, total // 50):
                    phase.rss_kib = {n: (rss_kib(cluster.pid(n)), 0) for n in cluster.names}
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    progress(f"  store: {phase.requests:,} requests, "
                             f"{phase.requests / (last - started):.0f}/s")
    phase.seconds = time.monotonic() - started
    phase.rss_kib = {n: (phase.rss_kib.get(n, (0, 0))[0], rss_kib(cluster.pid(n)))
                     for n in cluster.names}
    async with cluster.client() as client:
        rev_after = (await client.status())["revision"]
    phase.notes.append(f"accepted writes (well-formed after all): {dict(accepted) or 'none'}; "
                       f"store revision {rev_before} -> {rev_after}")
    if not accepted and rev_after != rev_before:
        phase.find("stored-by-refused", f"the revision moved {rev_before} -> {rev_after} "
                   "though no write was accepted")
    for n in cluster.names:
        if cluster.pid(n) is None:
            phase.find("crash", f"store replica {n} is gone")
    return phase


def run_store(workdir: Path, total: int, seed: int, concurrency: int,
              progress: Progress) -> Phase:
    """The store phase against a fresh three-replica store in ``workdir`` (stopped after)."""
    from store.launch import LocalCluster

    cluster = LocalCluster(workdir / "store", replicas=3)
    cluster.up(progress=lambda m: progress(f"  {m}"))
    try:
        return asyncio.run(_store_phase(cluster, total, seed, concurrency, progress))
    finally:
        cluster.down(progress=lambda m: None)


def summary(phases: list[Phase]) -> str:
    lines = []
    for p in phases:
        fives = p.counts["5xx"]
        expected = p.counts["504-rv-too-large"]
        lines.append(f"{p.name}: {p.requests:,} requests in {p.seconds:.0f} s "
                     f"({p.requests / max(p.seconds, 1e-9):.0f}/s); 5xx {fives}"
                     + (f" (and {expected:,} 504 ResourceVersionTooLarge, kube's answer for a "
                        "future resourceVersion)" if expected else "") + "; hangs "
                     f"{p.counts['hang']}; crashes {p.counts['crash']}; stored by a refused "
                     f"request {p.counts['stored-by-refused']}")
        lines.append("  answers: " + ", ".join(f"{k or 'none'}: {v:,}"
                                                for k, v in sorted(p.statuses.items())))
        lines.append("  families: " + ", ".join(f"{k} {v:,}" for k, v in p.families.most_common()))
        for name, (before, after) in p.rss_kib.items():
            growth = (after - before) / before * 100 if before else 0.0
            lines.append(f"  RSS {name}: {before / 1024:.1f} MiB after warm-up -> "
                         f"{after / 1024:.1f} MiB at the end ({growth:+.1f} %)")
        lines += [f"  {n}" for n in p.notes]
        lines += [f"  FINDING {f}" for f in p.findings]
    return "\n".join(lines)


def write_report(path: Path, phases: list[Phase], argv: list[str]) -> None:
    path.write_text(json.dumps({"command": argv, "phases": [p.to_json() for p in phases]},
                               indent=2) + "\n")
