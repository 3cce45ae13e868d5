"""API clients that record histories while faults happen: ConfigMap writers and reflector-style
watchers against the apiservers of an ``--api`` chaos run.

Role in the data flow: the runner starts :class:`ApiWorkload` next to the store workload; it
fills the same :class:`~chaos.history.History` (same clock, same op format); the checkers in
:mod:`chaos.checkers.api` judge it afterwards with the final state read here.

Clients (``--api-clients``, ids 200+c) work in namespace ``chaos``, each on its OWN objects
(names ``a<c>-<n>``, never reused), alternating between the apiservers op by op: create, CAS
update (GET, then PUT with the resourceVersion just read), JSON merge patch, delete, get.  Each
request has a timeout; the outcome is "ok" (2xx; a GET's 404 too: it observed absence),
"fail" (a definite 4xx: nothing was written) or "unknown" (timeout, connection error, 5xx: it
may take effect at any later time, since the apiserver goes on with it).  After an unknown
outcome a client re-reads the object before writing it again, and retries a create (same
name) only when its earlier create was unknown and the object is not there.

With ``contend`` (``--api-contend``) a racer (ids 250+) also creates a shared object ``s<n>``
about once a second, reads it once and sends four CAS updates carrying that one
resourceVersion at once, through both apiservers: at most one may succeed.

Watchers (2 per apiserver, ids 300+w, each pinned to one apiserver) do what client-go's
reflector does: list, watch from the list's resourceVersion with bookmarks, resume from the
last resourceVersion seen after any break, and relist on 410 Expired.

Op records (``kind``: input → output; every input has ``"server"``, the apiserver's index):

- ``api_create`` ``{"value"}`` → ``{"code", "rv", "value"}``; a failure → ``{"code", "reason"}``
- ``api_update`` ``{"value", "expected_rv", "expected"}`` (what the GET before it read)
- ``api_patch`` ``{"value"}``;  ``api_delete`` ``{}`` → ``{"code"}`` (a delete answers no rv)
- ``api_get`` ``{}`` → ``{"code", "value", "rv"}`` (value and rv None on 404)
- ``api_relist`` (watchers) ``{"reason"}`` → ``{"rv", "items": {name: [value, rv]}}``
- ``api_watch_event`` key = object name, ``{"stream"}`` → ``{"type", "rv", "value"}``;
  ``api_watch_bookmark`` → ``{"rv"}``; ``api_watch_error`` → ``{"code", "reason"}``
  (invoke = complete = arrival time).  An unknown outcome's output carries ``"error"``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from control.api.errors import APIError
from control.client import ApiClient, ClientConfig

from .api_answers import Answer, Belief, lists, rv_of, value_of
from .apiserver import ApiServers
from .checkers.api import ApiFinalState
from .history import History, Status

__all__ = ["API_CLIENT_BASE", "API_WATCHER_BASE", "NAMESPACE", "ApiWorkload"]

NAMESPACE = "chaos"
COLLECTION = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
API_CLIENT_BASE = 200
API_RACER_BASE = 250
API_WATCHER_BASE = 300
FINAL_READER = 399
_MERGE = "application/merge-patch+json"


def _now() -> float:
    return time.monotonic()


class ApiWorkload:
    """Clients and watchers over ``servers``; ``stop`` events end them (see the runner)."""

    def __init__(self, servers: ApiServers, history: History, *, seed: int, clients: int = 4,
                 watchers_per_server: int = 2, op_timeout: float = 5.0,
                 think: float = 0.05, idle_timeout: float = 15.0,
                 contend: bool = False) -> None:
        self._servers = servers
        self.history = history
        self._rng = random.Random(seed ^ 0x5EED)
        self._clients = clients
        self._watchers = watchers_per_server
        self._timeout = op_timeout
        self._think = think
        self._idle = idle_timeout
        self._contend = contend
        self.ops_done = 0
        self.codes: Counter[str] = Counter()  # "api_create 201", "api_get timeout", ...
        self.relists: Counter[int] = Counter()  # watcher id -> relists after 410
        self.watch_streams: Counter[int] = Counter()  # watcher id -> streams opened (200)
        self.watch_breaks: Counter[int] = Counter()  # watcher id -> open streams that broke
        self.watch_refused: Counter[int] = Counter()  # watcher id -> watch requests refused
        self.progress: dict[int, int] = {}  # watcher id -> highest rv seen (event/bookmark/list)
        self.notes: list[str] = []

    # --- plumbing ----------------------------------------------------------------------------

    def _session(self) -> ApiClient:
        """The shared API client to every apiserver (each call pinned to one), without
        retries: the workload records what happened to each single request."""
        config = ClientConfig(tuple(s.url for s in self._servers.servers),
                              self._servers.ssl_context(), "admin")
        return ApiClient(config, user_agent="ketch-chaos/1", retries=False,
                         timeout=self._timeout, attempt_timeout=self._timeout,
                         max_connections=64)

    async def _call(self, session: ApiClient, server: int, method: str,
                    path: str, body: Any = None, *, content_type: str = "application/json",
                    timeout: float | None = None) -> Answer:
        try:
            async with asyncio.timeout(timeout or self._timeout):
                r = await session.raw(method, path, body=body, content_type=content_type,
                                      server=server, timeout=timeout or self._timeout)
        except TimeoutError:
            return Answer(None, None, "timeout")
        except APIError as e:  # Unreachable or OutcomeUnknown: no HTTP answer
            return Answer(None, None, f"{type(e).__name__}: {e}"[:200])
        try:
            parsed = json.loads(r.body) if r.body else None
        except ValueError:
            parsed = None
        return Answer(r.status, parsed)

    def _begin(self, client: int, kind: str, key: str | None, input: dict[str, Any]) -> int:
        return self.history.record_invoke(client=client, kind=kind, key=key, input=input,
                                          at=_now())

    def _end(self, op: int, kind: str, ans: Answer, output: dict[str, Any], *,
             read: bool = False) -> Status:
        """Complete ``op``: ``output`` when ok, else the error code or what went wrong."""
        status = ans.status(read=read)
        if status == "ok":
            out = output
        elif ans.code is None:
            out = {"error": ans.error}
        else:
            out = {"code": ans.code, "reason": ans.reason()}
        self.history.record_complete(op, status, out, at=_now())
        self.codes[f"{kind} {ans.code if ans.code is not None else 'no-answer'}"] += 1
        return status

    # --- set-up --------------------------------------------------------------------------------

    async def setup(self, deadline: float = 60.0) -> None:
        """Create namespace ``chaos`` and wait until every apiserver's cache has it (its
        NamespaceLifecycle admission refuses creates in a namespace it has not seen)."""
        until = _now() + deadline
        async with self._session() as session:
            while True:
                ans = await self._call(session, 0, "POST", "/api/v1/namespaces",
                                       {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": NAMESPACE}})
                if ans.code in (201, 409):
                    break
                if _now() > until:
                    raise RuntimeError(f"cannot create namespace {NAMESPACE}: {ans}")
                await asyncio.sleep(0.2)
            for i in range(len(self._servers.servers)):
                # A list, not a GET of the namespace: GET /api/v1/namespaces/NAME answers 404
                # (the handler looks the namespace up inside itself; see the report).
                while not lists(await self._call(session, i, "GET",
                                                  "/api/v1/namespaces?resourceVersion=0"),
                                 NAMESPACE):
                    if _now() > until:
                        raise RuntimeError(f"apiserver {i} never saw namespace {NAMESPACE}")
                    await asyncio.sleep(0.1)

    # --- clients -------------------------------------------------------------------------------

    async def run_clients(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            for c in range(self._clients):
                tg.create_task(self._client(c, stop))
            if self._contend:
                tg.create_task(self._racer(stop))

    async def _racer(self, stop: asyncio.Event, racers: int = 4) -> None:
        rng = random.Random(self._rng.random())
        n = 0
        async with self._session() as session:
            while not stop.is_set():
                n += 1
                name = f"s{n}"
                objs: dict[str, Belief] = {}
                await self._create(session, API_RACER_BASE, n % 2, name, f"s{n}-0", objs)
                if name in objs and not objs[name].doubt:
                    await self._get(session, API_RACER_BASE, n % 2, name, objs)
                read = objs.get(name)
                if read is not None and not read.doubt and read.rv is not None:
                    await asyncio.gather(*(
                        self._update(session, API_RACER_BASE + 1 + i, i % 2, name,
                                     f"s{n}-r{i}", read, {name: Belief()})
                        for i in range(racers)))
                self.ops_done += 2 + racers
                await asyncio.sleep(rng.uniform(0.5, 1.5))

    async def _client(self, c: int, stop: asyncio.Event) -> None:
        rng = random.Random(self._rng.random())
        objs: dict[str, Belief] = {}
        n = 0
        async with self._session() as session:
            while not stop.is_set():
                n += 1
                server = n % len(self._servers.servers)
                await self._step(session, c, n, server, rng, objs)
                self.ops_done += 1
                if self._think:
                    await asyncio.sleep(rng.uniform(0, 2 * self._think))

    async def _step(self, session: ApiClient, c: int, n: int, server: int,
                    rng: random.Random, objs: dict[str, Belief]) -> None:
        cid = API_CLIENT_BASE + c
        value = f"c{c}-{n}"
        doubtful = [name for name, b in objs.items() if b.doubt]
        if doubtful:
            name = doubtful[0]
            await self._get(session, cid, server, name, objs)
            b = objs.get(name)
            if b is not None and b.pending_create and b.rv is None and not b.doubt:
                await self._create(session, cid, server, name, value, objs)  # a retry
            return
        live = sorted(objs)
        r = rng.random()
        if len(live) < 2 or (r < 0.2 and len(live) < 8):
            await self._create(session, cid, server, f"a{c}-{n}", value, objs)
        elif r < 0.45:
            name = rng.choice(live)
            await self._get(session, cid, server, name, objs)
            b = objs.get(name)
            if b is not None and not b.doubt and b.rv is not None:
                other = (server + 1) % len(self._servers.servers)  # read on one, write on the other
                await self._update(session, cid, other, name, value, b, objs)
        elif r < 0.65:
            await self._patch(session, cid, server, rng.choice(live), value, objs)
        elif r < 0.78 or len(live) > 8:
            await self._delete(session, cid, server, rng.choice(live), objs)
        else:
            await self._get(session, cid, server, rng.choice(live), objs)

    async def _create(self, session: ApiClient, cid: int, server: int, name: str,
                      value: str, objs: dict[str, Belief]) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": NAMESPACE}, "data": {"v": value}}
        op = self._begin(cid, "api_create", name, {"server": server, "value": value})
        ans = await self._call(session, server, "POST", COLLECTION, body)
        status = self._end(op, "api_create", ans, {"code": ans.code, "rv": rv_of(ans.body),
                                                   "value": value_of(ans.body)})
        b = objs.setdefault(name, Belief())
        if status == "ok":
            objs[name] = Belief(value_of(ans.body), rv_of(ans.body))
        elif status == "unknown" or ans.code == 409:
            b.doubt, b.pending_create = True, status == "unknown" or b.pending_create
        else:
            objs.pop(name, None)
            self.notes.append(f"create {name} failed: {ans.code} {ans.reason()}")

    async def _get(self, session: ApiClient, cid: int, server: int, name: str,
                   objs: dict[str, Belief] | None) -> tuple[Status, Answer]:
        op = self._begin(cid, "api_get", name, {"server": server})
        ans = await self._call(session, server, "GET", f"{COLLECTION}/{name}")
        found = ans.code == 200
        status = self._end(op, "api_get", ans,
                           {"code": ans.code, "value": value_of(ans.body) if found else None,
                            "rv": rv_of(ans.body) if found else None}, read=True)
        if objs is not None and status == "ok":
            b = objs[name]
            if found:
                objs[name] = Belief(value_of(ans.body), rv_of(ans.body))
            elif b.pending_create:
                b.doubt, b.rv = False, None  # not there: the create may be retried
            else:
                objs.pop(name)
        return status, ans

    def _after_write(self, name: str, status: Status, ans: Answer,
                     objs: dict[str, Belief]) -> None:
        if status == "ok":
            objs[name] = Belief(value_of(ans.body), rv_of(ans.body))
        else:
            objs[name].doubt = True

    async def _update(self, session: ApiClient, cid: int, server: int, name: str,
                      value: str, read: Belief, objs: dict[str, Belief]) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": NAMESPACE,
                             "resourceVersion": str(read.rv)}, "data": {"v": value}}
        op = self._begin(cid, "api_update", name, {"server": server, "value": value,
                                                   "expected_rv": read.rv,
                                                   "expected": read.value})
        ans = await self._call(session, server, "PUT", f"{COLLECTION}/{name}", body)
        status = self._end(op, "api_update", ans, {"code": ans.code, "rv": rv_of(ans.body),
                                                   "value": value_of(ans.body)})
        self._after_write(name, status, ans, objs)

    async def _patch(self, session: ApiClient, cid: int, server: int, name: str,
                     value: str, objs: dict[str, Belief]) -> None:
        op = self._begin(cid, "api_patch", name, {"server": server, "value": value})
        ans = await self._call(session, server, "PATCH", f"{COLLECTION}/{name}",
                               {"data": {"v": value}}, content_type=_MERGE)
        status = self._end(op, "api_patch", ans, {"code": ans.code, "rv": rv_of(ans.body),
                                                  "value": value_of(ans.body)})
        self._after_write(name, status, ans, objs)

    async def _delete(self, session: ApiClient, cid: int, server: int, name: str,
                      objs: dict[str, Belief]) -> None:
        op = self._begin(cid, "api_delete", name, {"server": server})
        ans = await self._call(session, server, "DELETE", f"{COLLECTION}/{name}")
        status = self._end(op, "api_delete", ans, {"code": ans.code})
        if status == "ok" or ans.code == 404:
            objs.pop(name, None)
        else:
            objs[name].doubt = True

    # --- watchers ------------------------------------------------------------------------------

    def watcher_ids(self) -> list[int]:
        n = len(self._servers.servers) * self._watchers
        return [API_WATCHER_BASE + w for w in range(n)]

    async def run_watchers(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            for w, wid in enumerate(self.watcher_ids()):
                tg.create_task(self._until(stop, self._watcher(wid, w % len(self._servers.servers))))

    async def _until(self, stop: asyncio.Event, work: Any) -> None:
        task = asyncio.create_task(work)
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, stopped):
                t.cancel()
            results = await asyncio.gather(task, stopped, return_exceptions=True)
        if isinstance(results[0], Exception):
            self.notes.append(f"watcher ended with {type(results[0]).__name__}: {results[0]}")

    async def _watcher(self, wid: int, server: int) -> None:
        rng = random.Random(wid)
        last: int | None = None
        reason = "initial"
        streams = 0
        backoff = 0.1  # doubles up to 1 s while nothing works, like the reflector's back-off
        async with self._session() as session:
            while True:
                if last is None:
                    last = await self._relist(session, wid, server, reason)
                    if last is None:
                        await asyncio.sleep(backoff * rng.uniform(1, 1.5))
                        backoff = min(1.0, backoff * 2)
                        continue
                streams += 1
                refused = self.watch_refused[wid]
                last, expired = await self._stream(session, wid, server, last, streams, rng)
                if expired:
                    self.relists[wid] += 1
                    last, reason = None, "expired"
                if self.watch_refused[wid] > refused:
                    backoff = min(1.0, backoff * 2)
                else:
                    backoff = 0.1
                await asyncio.sleep(backoff * rng.uniform(0.5, 1.5))

    def _seen(self, wid: int, rv: int) -> None:
        self.progress[wid] = max(self.progress.get(wid, 0), rv)

    async def _relist(self, session: ApiClient, wid: int, server: int,
                      reason: str) -> int | None:
        op = self._begin(wid, "api_relist", None, {"server": server, "reason": reason})
        ans = await self._call(session, server, "GET", COLLECTION)
        items: dict[str, list[Any]] = {}
        rv = None
        if ans.code == 200 and isinstance(ans.body, dict):
            rv = rv_of(ans.body)
            for item in ans.body.get("items", ()):
                items[item["metadata"]["name"]] = [value_of(item), rv_of(item)]
        if rv is None and ans.code == 200:
            ans = Answer(None, None, "list without a resourceVersion")
        self._end(op, "api_relist", ans, {"code": ans.code, "rv": rv, "items": items},
                  read=True)
        if rv is not None:
            self._seen(wid, rv)
        return rv

    def _instant(self, wid: int, kind: str, key: str | None, input: dict[str, Any],
                 output: dict[str, Any]) -> None:
        t = _now()
        op = self.history.record_invoke(client=wid, kind=kind, key=key, input=input, at=t)
        self.history.record_complete(op, "ok", output, at=t)

    async def _stream(self, session: ApiClient, wid: int, server: int, last: int,
                      stream: int, rng: random.Random) -> tuple[int, bool]:
        """One watch request from ``last``; (the last rv seen, whether it ended in 410)."""
        params = {"watch": "true", "resourceVersion": str(last), "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(rng.randint(20, 60))}
        inp = {"server": server, "stream": stream}
        opened = False
        try:
            r = await session.open_stream(COLLECTION, params, server=server,
                                          raise_for_status=False)
            async with r:
                if r.status != 200:
                    self._instant(wid, "api_watch_error", None, inp,
                                  {"code": r.status, "reason": "http"})
                    self.watch_refused[wid] += 1
                    return last, r.status == 410
                opened = True
                self.watch_streams[wid] += 1
                while True:
                    async with asyncio.timeout(self._idle):  # a silent stream is a dead one
                        line = await r.content.readline()
                    if not line:
                        break
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    typ, obj = ev.get("type"), ev.get("object") or {}
                    if typ == "ERROR":
                        code = obj.get("code")
                        self._instant(wid, "api_watch_error", None, inp,
                                      {"code": code, "reason": obj.get("reason", "")})
                        return last, code == 410
                    rv = rv_of(obj)
                    if rv is None:
                        self.notes.append(f"watcher {wid}: {typ} without resourceVersion")
                        continue
                    if typ == "BOOKMARK":
                        self._instant(wid, "api_watch_bookmark", None, inp, {"rv": rv})
                    else:
                        name = (obj.get("metadata") or {}).get("name")
                        self._instant(wid, "api_watch_event", name, inp,
                                      {"type": typ, "rv": rv, "value": value_of(obj)})
                    last = rv
                    self._seen(wid, rv)
        except (APIError, aiohttp.ClientError, OSError, TimeoutError, ValueError):
            (self.watch_breaks if opened else self.watch_refused)[wid] += 1
        return last, False

    # --- after the faults ----------------------------------------------------------------------

    async def final_state(self, progress: Callable[[str], None], *,
                          catch_up: float = 30.0, patience: float = 60.0
                          ) -> ApiFinalState | None:
        """After the heal: one consistent list, a GET of every object any create touched
        (both recorded as ops of client 399), then wait (up to ``catch_up`` s) until every
        watcher has seen the list's resourceVersion.  Call while the watchers still run.
        None (and a note) when no list succeeds within ``patience`` s; an object whose GET
        never succeeds is left out (the lost-writes checker counts it as not read)."""
        names = sorted({op.key for op in self.history if op.kind == "api_create" and op.key
                        and op.status != "fail"})
        until = _now() + patience
        async with self._session() as session:
            while True:
                op = self._begin(FINAL_READER, "api_final_list", None, {"server": 0})
                ans = await self._call(session, 0, "GET", COLLECTION, timeout=10.0)
                got_list = ans.code == 200 and isinstance(ans.body, dict) and rv_of(ans.body)
                if not got_list and ans.code == 200:
                    ans = Answer(None, None, "list without a resourceVersion")
                listed = {i["metadata"]["name"]: (value_of(i), rv_of(i))
                          for i in (ans.body or {}).get("items", ())} if got_list else {}
                list_rv = (rv_of(ans.body) or 0) if got_list else 0
                self._end(op, "api_final_list", ans, {"code": ans.code, "rv": list_rv,
                                                      "items": {k: list(v) for k, v in
                                                                listed.items()}})
                if got_list:
                    break
                if _now() > until:
                    self.notes.append(f"no final list within {patience:.0f} s after the heal "
                                      f"(last answer {ans.code} {ans.error or ans.reason()})")
                    return None
                await asyncio.sleep(0.3)
            objects: dict[str, tuple[str | None, int | None] | None] = {}
            for i, name in enumerate(names):
                status, got = await self._get(session, FINAL_READER, i % 2, name, None)
                while status != "ok" and _now() < until:
                    await asyncio.sleep(0.2)
                    status, got = await self._get(session, FINAL_READER, i % 2, name, None)
                if status == "ok":
                    objects[name] = (value_of(got.body), rv_of(got.body)) if got.code == 200 \
                        else None
                else:
                    self.notes.append(f"final GET of {name} kept failing: {got.code} "
                                      f"{got.error or got.reason()}")
        progress(f"API final state: {len(objects)} objects read, list at rv {list_rv}; "
                 "waiting for the watchers to reach it")
        deadline = _now() + catch_up
        while _now() < deadline and any(self.progress.get(w, 0) < list_rv
                                        for w in self.watcher_ids()):
            await asyncio.sleep(0.2)
        lagging = {w: self.progress.get(w, 0) for w in self.watcher_ids()
                   if self.progress.get(w, 0) < list_rv}
        return ApiFinalState(list_rv, listed, objects, lagging)
