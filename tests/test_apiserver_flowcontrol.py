"""API priority and fairness: which level each request gets (kube's default FlowSchemas), seats
and queues per level, round-robin between flows, 429 when the queue is full or the wait too
long, and the levels' figures on /metrics."""

from __future__ import annotations

import asyncio

import pytest

from control.api.errors import TooManyRequests
from control.apiserver.app import FLOW_CONTROL
from control.apiserver.flowcontrol import DEFAULT_SHARES, FlowControl, classify
from control.apiserver.rbac import UserInfo
from control.apiserver.requestinfo import parse_request_info
from control.client import resources as R
from tests.inprocess import InProcessAPI

AUTH = "system:authenticated"
NODE = UserInfo("system:node:n1", ("system:nodes", AUTH))
CM = UserInfo("system:kube-controller-manager", (AUTH,))
SCHED = UserInfo("system:kube-scheduler", (AUTH,))
ADMIN = UserInfo("admin", ("system:masters", AUTH))
SA = UserInfo("system:serviceaccount:default:app", ("system:serviceaccounts", AUTH))
SYS_SA = UserInfo("system:serviceaccount:kube-system:coredns", ("system:serviceaccounts", AUTH))
ALICE = UserInfo("alice", (AUTH,))


@pytest.mark.parametrize(("user", "method", "path", "level"), [
    pytest.param(ADMIN, "POST", "/api/v1/namespaces/default/pods", "exempt", id="masters"),
    pytest.param(ALICE, "GET", "/readyz", "exempt", id="probe"),
    pytest.param(ALICE, "GET", "/version", "global-default", id="non-resource"),
    pytest.param(CM, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"
                 "kube-controller-manager", "leader-election", id="cm-lease"),
    pytest.param(SCHED, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"
                 "kube-scheduler", "leader-election", id="scheduler-lease"),
    pytest.param(NODE, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
                 "n1", "node-high", id="node-heartbeat"),
    pytest.param(NODE, "PATCH", "/api/v1/nodes/n1/status", "node-high", id="node-status"),
    pytest.param(NODE, "GET", "/api/v1/nodes", "system", id="node-lists-nodes"),
    pytest.param(NODE, "PATCH", "/api/v1/namespaces/a/pods/p/status", "system",
                 id="node-pod-status"),
    pytest.param(CM, "POST", "/api/v1/namespaces/a/pods", "workload-high", id="cm-pods"),
    pytest.param(SCHED, "POST", "/api/v1/namespaces/a/pods/p/binding", "workload-high",
                 id="bind"),
    pytest.param(SYS_SA, "GET", "/api/v1/services", "workload-high", id="kube-system-sa"),
    pytest.param(SA, "GET", "/api/v1/namespaces/default/pods", "workload-low", id="sa"),
    pytest.param(ALICE, "GET", "/api/v1/namespaces/default/pods", "global-default", id="user"),
    pytest.param(UserInfo("system:anonymous", ("system:unauthenticated",)), "GET",
                 "/api/v1/namespaces/default/pods", "catch-all", id="anonymous"),
])
def test_requests_are_classified_as_kubes_default_flowschemas_do(
        user: UserInfo, method: str, path: str, level: str) -> None:
    assert classify(user, parse_request_info(method, path, {})) == level


def test_seats_follow_kubes_shares() -> None:
    fc = FlowControl(245)  # the shares sum to 245: one seat per share
    assert {n: lv.seats for n, lv in fc.levels.items()} == DEFAULT_SHARES


async def test_waiters_are_served_round_robin_by_flow_when_a_seat_frees() -> None:
    fc = FlowControl(1, max_wait=5.0)  # one seat in every level
    first = await fc.admit("system", "busy")
    order: list[str] = []

    async def one(flow: str) -> None:
        level = await fc.admit("system", flow)
        order.append(flow)
        level.leave()

    tasks = [asyncio.create_task(one(f)) for f in ("busy", "busy", "busy", "quiet")]
    await asyncio.sleep(0.01)
    assert fc.levels["system"].waiting == 4
    first.leave()
    await asyncio.gather(*tasks)
    assert order == ["busy", "quiet", "busy", "busy"]  # quiet is not behind busy's backlog
    assert fc.levels["system"].executing == 0 and fc.levels["system"].waiting == 0
    # other levels were never blocked by this one
    (await fc.admit("node-high", "n1")).leave()


async def test_a_full_queue_or_a_long_wait_is_429_and_a_gone_waiter_frees_its_place() -> None:
    fc = FlowControl(1, queue_limit=1, max_wait=0.05)
    held = await fc.admit("workload-high", "cm")
    waiter = asyncio.create_task(fc.admit("workload-high", "sched"))
    await asyncio.sleep(0.01)
    with pytest.raises(TooManyRequests) as full:
        await fc.admit("workload-high", "cm")
    assert full.value.code == 429 and full.value.details["retryAfterSeconds"] == 1
    with pytest.raises(TooManyRequests):
        await waiter  # waited past max_wait
    level = fc.levels["workload-high"]
    assert level.waiting == 0
    cancelled = asyncio.create_task(fc.admit("workload-high", "x"))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert level.waiting == 0
    held.leave()
    assert level.executing == 0


async def test_the_levels_are_on_metrics(api: InProcessAPI) -> None:
    async with api.node("n1") as node:
        await node.list(R.NODES)  # a request that takes a seat
    async with api.client() as admin:
        reply = await admin.raw("GET", "/metrics")
    text = reply.body.decode()
    assert 'apiserver_flowcontrol_current_executing_requests{priority_level="node-high"}' in text
    assert 'apiserver_flowcontrol_request_wait_duration_seconds_count{priority_level="system"} ' \
        '1.0' in text


async def test_the_latency_sli_leaves_out_the_wait_in_the_queue(api: InProcessAPI) -> None:
    # kube's API call latency SLO is measured without the wait in flow control's queues
    # (apiserver_request_sli_duration_seconds); apiserver_request_duration_seconds keeps it.
    level = api.app[FLOW_CONTROL].levels["system"]
    level.executing = level.seats  # every seat of the nodes' level is taken
    async with api.node("n1") as node:
        listing = asyncio.create_task(node.list(R.NODES))
        deadline = asyncio.get_running_loop().time() + 10
        while not level.waiting:
            assert asyncio.get_running_loop().time() < deadline, "the list never queued"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the time it waits
        level.leave()  # a seat frees: the list runs
        await listing
    level.executing -= level.seats - 1
    async with api.client() as admin:
        text = (await admin.raw("GET", "/metrics")).body.decode()

    def total(metric: str) -> float:
        line = f'{metric}_sum{{resource="nodes",verb="list"}} '
        return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line))

    full = total("apiserver_request_duration_seconds")
    sli = total("apiserver_request_sli_duration_seconds")
    assert full >= 0.3
    assert 0 < sli <= full - 0.3
