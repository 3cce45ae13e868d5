"""The benchmark's side of the wire: JSON over HTTPS with the admin client certificate, and CPU
accounting of the cluster's process groups.

`ApiClient` owns one aiohttp session (a connector sized for the concurrency) and turns every
non-2xx answer into an `ApiError` (409 into `ApiConflict`) in one place, so the load code only
sees objects or exceptions.  `GroupCpu` measures how many cores the apiserver(s), the store
replicas and this process used over an interval (from /proc, like `machine.CpuMeter`).
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp

from ketch.bench.api_report import CpuUse
from ketch.bench.machine import CpuMeter, process_ticks

__all__ = ["MERGE_PATCH", "ApiClient", "ApiConflict", "ApiError", "GroupCpu"]

MERGE_PATCH = "application/merge-patch+json"
_JSON = "application/json"


class ApiError(Exception):
    """The apiserver answered ``status`` (not 2xx); ``reason`` is the Status reason if any."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}"[:200])
        self.status = status
        self.reason = reason


class ApiConflict(ApiError):
    """409: a compare-and-swap lost (or the object already exists)."""


def _error(status: int, body: bytes) -> ApiError:
    try:
        doc = json.loads(body)
        reason, message = str(doc.get("reason", "")), str(doc.get("message", ""))
    except (ValueError, AttributeError):
        reason, message = "", body[:120].decode(errors="replace")
    cls = ApiConflict if status == 409 else ApiError
    return cls(status, reason, message)


class ApiClient:
    """JSON requests to the apiservers at ``urls`` with ``ssl_context``; use ``async with``.

    At most ``limit`` connections are open at once (requests beyond that queue in the
    connector, and that wait is part of their latency, as in any client).  Every request is
    bounded by ``timeout`` seconds; no retries: a failure is a data point.  Watches use their own
    session (`session_for_watches`) so their long-lived connections never take a slot here.
    """

    def __init__(self, urls: Sequence[str], ssl_context: ssl.SSLContext, *, limit: int,
                 timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("no apiserver URL")
        self.urls = list(urls)
        self.ssl_context = ssl_context
        self._limit = limit
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0,
                                         ssl=self.ssl_context)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                              headers={"User-Agent": "ketch-bench/api"})
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, index: int) -> str:
        """The apiserver a worker talks to: ``index`` modulo the number of apiservers."""
        return self.urls[index % len(self.urls)]

    def session_for_watches(self, n: int) -> aiohttp.ClientSession:
        """A new session for ``n`` long-lived watch streams (no total timeout); the caller
        closes it."""
        connector = aiohttp.TCPConnector(limit=n + 1, limit_per_host=0, ssl=self.ssl_context)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=None)
        return aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"User-Agent": "ketch-bench/api-watch"})

    async def request(self, method: str, path: str, *, body: Any = None,
                      content_type: str = _JSON, params: Mapping[str, str] | None = None,
                      server: int = 0) -> dict[str, Any]:
        """``method path`` on apiserver ``server``; the decoded JSON answer.

        Raises `ApiError` (`ApiConflict` for 409) for a non-2xx answer, aiohttp's errors for
        transport failures and TimeoutError past the timeout."""
        assert self._session is not None, "use ApiClient in `async with`"
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": content_type, "Accept": _JSON} if data else {"Accept": _JSON}
        async with self._session.request(method, self.url(server) + path, data=data,
                                         headers=headers, params=params) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise _error(resp.status, raw)
        answer: dict[str, Any] = json.loads(raw)
        return answer

    async def ensure_namespace(self, name: str) -> None:
        """Create namespace ``name`` unless it exists."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            await self.request("POST", "/api/v1/namespaces", body=body)
        except ApiConflict:
            pass


class GroupCpu:
    """Cores used by named groups of processes between `start` and `stop`.

    ``groups`` maps a name ("apiserver", "store") to a callable listing its pids now; "client"
    is always this process.  A pid seen only at `stop` counts from zero; one gone by `stop`
    counts up to the last `start`/`stop` sample of it (so a crash under-counts, never
    over-counts).  The machine's share used by others comes from `machine.CpuMeter`."""

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]]) -> None:
        self._groups = dict(groups)
        self._groups["client"] = lambda: [os.getpid()]
        self._meter = CpuMeter(lambda: [p for f in groups.values() for p in f()])
        self._first: dict[str, dict[int, int]] = {}
        self._began = 0.0

    def _ticks(self) -> dict[str, dict[int, int]]:
        return {name: {pid: process_ticks(pid) for pid in pids()}
                for name, pids in self._groups.items()}

    def start(self) -> None:
        self._meter.start()
        self._first = self._ticks()
        self._began = time.monotonic()

    def stop(self) -> CpuUse:
        share = self._meter.stop()
        wall = max(time.monotonic() - self._began, 1e-9)
        hz = os.sysconf("SC_CLK_TCK")
        cores: dict[str, float] = {}
        for name, now in self._ticks().items():
            first = self._first.get(name, {})
            used = sum(t - first.get(pid, 0) for pid, t in now.items() if t)
            cores[name] = used / hz / wall
        return CpuUse(apiserver=cores.get("apiserver", 0.0), store=cores.get("store", 0.0),
                      client=cores["client"], machine=share)

