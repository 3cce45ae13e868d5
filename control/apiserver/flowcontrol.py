"""API priority and fairness, in small (kube-apiserver's APF with its default configuration):
an overloaded apiserver keeps serving heartbeats and leader elections while workload requests
wait their turn.

Without it every request that arrives starts at once; past what the one event loop can do, all
of them slow down together, and a controller-manager whose Lease renewals take longer than its
renew deadline loses leadership and exits — which is what ketch's scale benchmark saw at 1,000
hollow nodes.  With it, each request (after authentication and authorization) is classified
into a priority level, as Kubernetes' default FlowSchemas do:

* ``exempt`` — ``system:masters`` and the health probes: never wait;
* ``leader-election`` — the controller-manager's and scheduler's Leases (and the legacy
  endpoints/configmaps locks) in kube-system;
* ``node-high`` — nodes writing their Node or their Lease (the heartbeat);
* ``system`` — everything else nodes do;
* ``workload-high`` — the controller-manager, the scheduler and kube-system service accounts;
* ``workload-low`` — other service accounts;
* ``global-default`` — every other authenticated user; ``catch-all`` — the rest.

Each level has seats (kube's nominal concurrency shares of the server's total, ``--max-requests-
inflight``); a request takes a seat for as long as it runs, or waits in its level's queue.
Within a level the waiting requests are served round-robin by flow (the user), so one busy
client cannot starve the others of its level (kube's fair queuing, without its shuffle
sharding).  A request that waits longer than ``max_wait`` or finds the queue full is refused
with 429 and ``Retry-After: 1``, which every client retries.  Watches and other long-running
requests (exec, attach, port-forward, logs, proxy) take no seat.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from control.api.errors import TooManyRequests
from control.apiserver.rbac import UserInfo
from control.apiserver.requestinfo import RequestInfo

__all__ = ["DEFAULT_SHARES", "QUEUE_WAIT", "FlowControl", "Level", "classify", "flow_control"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds a request waited in its priority level's queue (admitted or refused), for the
#: request latency SLI, which leaves it out (kube's apiserver_request_sli_duration_seconds).
QUEUE_WAIT: web.RequestKey[float] = web.RequestKey("queue_wait", float)

#: kube's default PriorityLevelConfigurations: nominal concurrency shares (exempt has none).
DEFAULT_SHARES: dict[str, int] = {
    "leader-election": 10, "node-high": 40, "system": 30, "workload-high": 40,
    "workload-low": 100, "global-default": 20, "catch-all": 5}
EXEMPT = "exempt"
_LONG_RUNNING = frozenset({"exec", "attach", "portforward", "log", "proxy"})
_PROBES = frozenset({"/healthz", "/livez", "/readyz"})
_LOCKS = frozenset({"leases", "endpoints", "configmaps"})
_CONTROL_PLANE = frozenset({"system:kube-controller-manager", "system:kube-scheduler"})


def classify(user: UserInfo, info: RequestInfo) -> str:
    """The priority level of a request (kube's default FlowSchemas, first match wins)."""
    groups = user.groups
    if "system:masters" in groups:
        return EXEMPT
    if not info.is_resource_request:
        if info.path.rstrip("/") in _PROBES or info.path.startswith(("/healthz/", "/livez/",
                                                                      "/readyz/")):
            return EXEMPT
        return "global-default" if "system:authenticated" in groups else "catch-all"
    if user.name in _CONTROL_PLANE and info.resource in _LOCKS \
            and info.namespace == "kube-system":
        return "leader-election"
    if "system:nodes" in groups:
        if info.resource == "leases" or (info.resource == "nodes" and info.verb != "list"
                                         and info.verb != "watch"):
            return "node-high"
        return "system"
    if user.name in _CONTROL_PLANE or user.name.startswith("system:serviceaccount:kube-system:"):
        return "workload-high"
    if "system:serviceaccounts" in groups:
        return "workload-low"
    return "global-default" if "system:authenticated" in groups else "catch-all"


def _long_running(info: RequestInfo) -> bool:
    return info.verb == "watch" or info.subresource in _LONG_RUNNING


@dataclass
class Level:
    """One priority level: ``seats`` requests run at once, the others wait (at most
    ``queue_limit``), served round-robin by flow."""

    name: str
    seats: int
    queue_limit: int
    executing: int = 0
    waiting: int = 0

    def __post_init__(self) -> None:
        self._flows: collections.OrderedDict[str, collections.deque[asyncio.Future[None]]] = \
            collections.OrderedDict()

    def try_enter(self) -> bool:
        if self.executing < self.seats and not self.waiting:
            self.executing += 1
            return True
        return False

    def enqueue(self, flow: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flows.setdefault(flow, collections.deque()).append(fut)
        self.waiting += 1
        return fut

    def forget(self, flow: str, fut: asyncio.Future[None]) -> None:
        """A waiter gave up (timeout, client gone) before it was dispatched."""
        queue = self._flows.get(flow)
        if queue is not None and fut in queue:
            queue.remove(fut)
            self.waiting -= 1
            if not queue:
                del self._flows[flow]

    def leave(self) -> None:
        """A request finished: its seat goes to the next flow's oldest waiter."""
        self.executing -= 1
        while self._flows and self.executing < self.seats:
            flow, queue = next(iter(self._flows.items()))
            fut = queue.popleft()
            self.waiting -= 1
            if queue:
                self._flows.move_to_end(flow)  # round-robin: that flow goes last
            else:
                del self._flows[flow]
            if not fut.done():
                self.executing += 1
                fut.set_result(None)


class FlowControl:
    """The levels of one apiserver, sized from ``total`` seats by kube's shares."""

    #: Shorter than the clients' per-attempt timeouts (10 s for node heartbeats and by
    #: default): an overloaded server answers 429 on a live connection, which the client
    #: retries after Retry-After, instead of the client giving up, closing the connection
    #: and paying a TLS handshake on both sides for the retry — at 1,000 hollow nodes that
    #: spiral left queues full of abandoned requests and no pod starting.
    MAX_WAIT = 4.0

    def __init__(self, total: int = 600, *, queue_limit: int = 2000,
                 max_wait: float = MAX_WAIT,
                 registry: CollectorRegistry | None = None) -> None:
        shares = sum(DEFAULT_SHARES.values())
        self.levels = {name: Level(name, max(1, round(total * s / shares)), queue_limit)
                       for name, s in DEFAULT_SHARES.items()}
        self.max_wait = max_wait
        reg = registry or CollectorRegistry()
        self.m_wait = Histogram(
            "apiserver_flowcontrol_request_wait_duration_seconds",
            "Time requests waited in their priority level's queue", ("priority_level",),
            registry=reg, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 15))
        self.m_rejected = Counter("apiserver_flowcontrol_rejected_requests_total",
                                  "Requests refused with 429", ("priority_level", "reason"),
                                  registry=reg)
        self.m_waiting = Gauge("apiserver_flowcontrol_current_inqueue_requests",
                               "Requests waiting", ("priority_level",), registry=reg)
        self.m_executing = Gauge("apiserver_flowcontrol_current_executing_requests",
                                 "Requests holding a seat", ("priority_level",), registry=reg)
        for name, level in self.levels.items():
            self.m_waiting.labels(name).set_function(_reader(level, "waiting"))
            self.m_executing.labels(name).set_function(_reader(level, "executing"))

    async def admit(self, level_name: str, flow: str) -> Level:
        """A seat of ``level_name`` for ``flow`` (wait for one); 429 if none comes in time."""
        level = self.levels[level_name]
        if level.try_enter():
            self.m_wait.labels(level_name).observe(0.0)
            return level
        if level.waiting >= level.queue_limit:
            self.m_rejected.labels(level_name, "queue-full").inc()
            raise TooManyRequests("Too many requests, please try again later.", 1)
        started = time.perf_counter()
        fut = level.enqueue(flow)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.max_wait)
        except TimeoutError:
            level.forget(flow, fut)
            if fut.done() and not fut.cancelled():  # dispatched as the timer fired: use it
                return level
            self.m_rejected.labels(level_name, "time-out").inc()
            raise TooManyRequests("Too many requests, please try again later.", 1) from None
        except asyncio.CancelledError:
            level.forget(flow, fut)
            if fut.done() and not fut.cancelled():
                level.leave()  # the seat it was given goes on to the next
            raise
        finally:
            self.m_wait.labels(level_name).observe(time.perf_counter() - started)
        return level


def _reader(level: Level, attr: str) -> Callable[[], float]:
    return lambda: float(getattr(level, attr))


def flow_control(fc: FlowControl, info_key: web.RequestKey[RequestInfo],
                 user_key: web.RequestKey[UserInfo]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware: runs after authentication and authorization (which set the request's
    info and user), holds a seat of the request's level while the handler runs."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        info, user = request.get(info_key), request.get(user_key)
        if info is None or user is None or _long_running(info):
            return await handler(request)
        name = classify(user, info)
        if name == EXEMPT:
            return await handler(request)
        started = time.perf_counter()
        try:
            level = await fc.admit(name, user.name)
        finally:
            request[QUEUE_WAIT] = time.perf_counter() - started
        try:
            return await handler(request)
        finally:
            level.leave()

    return middleware
