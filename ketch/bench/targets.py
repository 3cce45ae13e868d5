"""The systems under test behind one small protocol: each owns its cluster and its client.

`run_closed_loop` only ever sees ``target.put`` / ``target.get``; the CLI drives `setup`,
`close`, `leader_kill` and `restart`.  Both targets are deliberately alike: one client object
per run, the same client certificate and TLS context (`certs.tls.client_context`) against the
same CA, requests sent to the leader the client has learned (as ketch's StoreClient does), and
linearizable reads (etcd's range default; ketch's get default).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp

from ketch.bench import etcd as etcd_mod

if TYPE_CHECKING:
    from store.client import StoreClient
    from store.launch import LocalCluster

__all__ = ["ENDPOINT_MODES", "MEMBERS", "EtcdTarget", "KetchTarget", "Target", "TargetError"]

MEMBERS = ("etcd-0", "etcd-1", "etcd-2")
ENDPOINT_MODES = ("leader", "any")
_PROBE_INTERVAL = 0.05

T = TypeVar("T")


class TargetError(RuntimeError):
    """A request reached the system and was refused (non-2xx answer), or no leader was found."""


class Target(Protocol):
    """A running replicated store the benchmark can write to, read from and fail over.

    `setup` starts the cluster and opens the client (call once); `close` stops both and must be
    safe after a failed or partial `setup`.  `put` and `get` raise on any failure (the load
    generator counts it); `get` returns the value or None.  `leader_kill` SIGKILLs the current
    leader and returns its name; `restart(name)` starts it again and returns once it serves.
    """

    name: str

    async def setup(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: bytes, value: bytes) -> None: ...

    async def get(self, key: bytes) -> bytes | None: ...

    async def leader_kill(self) -> str: ...

    async def restart(self, name: str) -> None: ...

    def pids(self) -> list[int]:
        """Process ids of the cluster's running members (for CPU accounting)."""
        ...


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking control-plane call off the event loop (cluster start, kill, status)."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class EtcdTarget:
    """etcd 3.4 through its v3 JSON gateway: one aiohttp session, ketch's client TLS context.

    ``ca_dir`` is the CA to issue etcd's certificates from (ketch's, for a like-for-like run).
    The connector allows ``concurrency`` + a few connections so the client never queues behind
    its own pool.  ``endpoints`` picks where a request goes:

    - ``"leader"`` (default; what ketch's StoreClient does): the member whose
      ``/v3/maintenance/status`` says it is leader, found by asking every member over HTTP (at
      most one probe per 50 ms); any failure there forgets it, and requests wait for the next.
    - ``"any"`` (what etcd's clientv3 does): round-robin over all members; followers forward.

    A request whose connection could not be opened was never sent, so it alone is retried on
    the next endpoint (as clientv3's balancer would); any other failure is raised as is.
    """

    name = "etcd"

    def __init__(
        self,
        root: Path,
        *,
        ca_dir: Path,
        concurrency: int,
        timeout: float = 5.0,
        endpoints: str = "leader",
        extra_args: Sequence[str] = (),
        progress: Callable[[str], None] = print,
    ) -> None:
        if endpoints not in ENDPOINT_MODES:
            raise ValueError(f"endpoints must be one of {ENDPOINT_MODES}, got {endpoints!r}")
        self._root = root
        self._ca_dir = ca_dir
        self._limit = concurrency + 8
        self._timeout = timeout
        self._mode = endpoints
        self._extra = tuple(extra_args)
        self._progress = progress
        self.cluster: etcd_mod.EtcdCluster | None = None
        self._session: aiohttp.ClientSession | None = None
        self._urls: list[str] = []
        self._next = itertools.count()
        self._leader_url: str | None = None
        self._probe_lock = asyncio.Lock()
        self._probe_after = 0.0

    async def setup(self) -> None:
        tls = await _call(etcd_mod.issue_tls, self._ca_dir, self._root / "tls", MEMBERS)
        self.cluster = etcd_mod.EtcdCluster(
            self._root, tls=tls, extra_args=self._extra, progress=self._progress
        )
        await self.cluster.start()
        self._urls = self.cluster.client_urls
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=etcd_mod.client_ssl(tls), limit=self._limit),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.cluster is not None:
            await self.cluster.stop()

    async def _status(self, url: str) -> dict[str, Any] | None:
        assert self._session is not None, "setup() first"
        try:
            async with self._session.post(
                url + "/v3/maintenance/status", json={}, timeout=aiohttp.ClientTimeout(total=1.0)
            ) as resp:
                data: dict[str, Any] = await resp.json(content_type=None)
                return data if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def _probe(self) -> str | None:
        """Ask every member; the URL of the one that says it is the leader itself, or None."""
        answers = await asyncio.gather(*(self._status(u) for u in self._urls))
        for url, st in zip(self._urls, answers, strict=True):
            if st and st.get("leader") == st.get("header", {}).get("member_id"):
                return url
        return None

    async def _leader(self) -> str:
        """The known leader's URL; with none known, probe (one prober, every 50 ms) until a
        member says it leads or ``timeout`` passes (TargetError).  Sending to a follower instead
        would let it forward to a leader that may be dead, and etcd 3.4 then holds the request
        until its own 7 s request timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while self._leader_url is None:
            async with self._probe_lock:
                if self._leader_url is None and loop.time() >= self._probe_after:
                    self._probe_after = loop.time() + _PROBE_INTERVAL
                    self._leader_url = await self._probe()
            if self._leader_url is None:
                if loop.time() >= deadline:
                    raise TargetError(f"etcd: no member says it leads after {self._timeout}s")
                await asyncio.sleep(_PROBE_INTERVAL)
        return self._leader_url

    async def _first_url(self) -> str:
        if self._mode == "leader":
            return await self._leader()
        return self._urls[next(self._next) % len(self._urls)]

    def _forget(self, url: str) -> None:
        if self._leader_url == url:
            self._leader_url = None

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        assert self._session is not None, "setup() first"
        url = await self._first_url()
        for attempt in range(len(self._urls)):
            try:
                async with self._session.post(url + path, json=body) as resp:
                    data: dict[str, Any] = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise TargetError(f"etcd {resp.status}: {data.get('error') or data}")
                    return data
            except aiohttp.ClientConnectorError:
                self._forget(url)
                if attempt == len(self._urls) - 1:
                    raise
                url = self._urls[(self._urls.index(url) + 1) % len(self._urls)]
            except BaseException:
                self._forget(url)
                raise
        raise AssertionError("unreachable")

    async def put(self, key: bytes, value: bytes) -> None:
        await self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    async def get(self, key: bytes) -> bytes | None:
        data = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = data.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    async def leader_kill(self) -> str:
        assert self.cluster is not None, "setup() first"
        name = await self.cluster.leader()
        if name is None:
            raise TargetError("etcd has no leader to kill")
        self.cluster.kill(name)
        return name

    async def restart(self, name: str) -> None:
        assert self.cluster is not None, "setup() first"
        await self.cluster.restart(name)

    def pids(self) -> list[int]:
        return self.cluster.pids() if self.cluster is not None else []


def _value_of(answer: Mapping[str, Any]) -> bytes | None:
    """The value of the single key in a store range answer ``{"kvs": [KeyValue], ...}``."""
    kvs = answer.get("kvs") or []
    value = kvs[0].get("value") if kvs else None
    return value if isinstance(value, bytes) else None


class KetchTarget:
    """ketch's 3-replica store via `store.launch.LocalCluster` and `store.client.StoreClient`.

    Thin on purpose: the cluster and the client are ketch's own (fsync on unless asked), the benchmark adds
    nothing to the request path.  ``coalesce`` None keeps the client's default (concurrent ops
    share one batch request); False makes it send one request per op, as `EtcdTarget` does.  `certs_dir` (ketch's CA and ``store-client`` pair) is
    available after `setup`, for issuing etcd's certificates.  LocalCluster's calls block, so
    they run in a worker thread.
    """

    name = "ketch"

    def __init__(
        self,
        root: Path,
        *,
        timeout: float = 5.0,
        progress: Callable[[str], None] = print,
        restart_deadline: float = 30.0,
        coalesce: bool | None = None,
        fsync: bool = True,
    ) -> None:
        self._root = root
        self._fsync = fsync
        self._timeout = timeout
        self._coalesce = coalesce
        self._progress = progress
        self._restart_deadline = restart_deadline
        self._cluster: LocalCluster | None = None
        self._client: StoreClient | None = None

    @property
    def cluster(self) -> LocalCluster:
        assert self._cluster is not None, "setup() first"
        return self._cluster

    @property
    def certs_dir(self) -> Path:
        return Path(self.cluster.certs_dir)

    async def setup(self) -> None:
        from store.launch import LocalCluster

        self._root.mkdir(parents=True, exist_ok=True)
        self._cluster = LocalCluster(self._root, replicas=3, fsync=self._fsync)
        await _call(self._cluster.up, progress=self._progress)
        options: dict[str, Any] = {"timeout": self._timeout}
        if self._coalesce is not None:
            options["coalesce"] = self._coalesce
        self._client = self._cluster.client(**options)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._cluster is not None and self._cluster.exists:
            await _call(self._cluster.down, progress=self._progress)

    async def put(self, key: bytes, value: bytes) -> None:
        assert self._client is not None, "setup() first"
        await self._client.put(key, value)

    async def get(self, key: bytes) -> bytes | None:
        assert self._client is not None, "setup() first"
        return _value_of(await self._client.get(key))

    async def leader_kill(self) -> str:
        name = await _call(self.cluster.leader)
        if name is None:
            raise TargetError("ketch has no leader to kill")
        await _call(self.cluster.kill, name, signal.SIGKILL)
        return name

    def pids(self) -> list[int]:
        if self._cluster is None or not self._cluster.exists:
            return []
        return [pid for n in self._cluster.names if (pid := self._cluster.pid(n)) is not None]

    async def restart(self, name: str) -> None:
        """Start ``name`` again; return once it answers /v1/status and some replica leads."""
        await _call(self.cluster.start, name)
        until = time.monotonic() + self._restart_deadline
        while True:
            statuses = await _call(self.cluster.status, 1.0)
            if statuses.get(name) and any(s and s.get("is_leader") for s in statuses.values()):
                return
            if time.monotonic() > until:
                raise TargetError(
                    f"ketch: {name} not serving {self._restart_deadline}s after start"
                )
            await asyncio.sleep(0.1)
