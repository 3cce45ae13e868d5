"""PodDisruptionBudgets and the pods/eviction subresource.

The PDB strategy is table-driven like the other strategies.  Eviction runs against the real
registry, storage, watch cache and admission chain over an in-process store
(:class:`store.memory.MemoryStore`): each case seeds pods and budgets, evicts, and asserts
the answer, what became of the pod and what became of the budget — Kubernetes' EvictionREST
rules, including a budget written by someone else between the read and the write.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control.api.catalog import lookup
from control.api.errors import APIError, Cause, NotFound
from control.apiserver.bootstrap import bootstrap
from control.apiserver.eviction import evict
from control.apiserver.objectmeta import Inputs
from control.apiserver.rbac import UserInfo
from control.apiserver.registry import WriteContext
from control.apiserver.requestinfo import QueryOptions
from control.apiserver.state import APIState
from control.apiserver.storage import GroupResource
from control.apiserver.strategies import strategy_for
from control.apiserver.tables import table_for
from store.memory import MemoryStore

Obj = dict[str, Any]
ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))
NOW = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
STAMP = "2026-05-01T08:00:00Z"
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
PODS, PDBS = GroupResource("", "pods"), GroupResource("policy", "poddisruptionbudgets")


# --- the PodDisruptionBudget strategy ------------------------------------------------------

def pdb_obj(**spec: Any) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


def test_pdb_status_starts_at_zero_and_generation_follows_spec() -> None:
    s = strategy_for("policy", "poddisruptionbudgets")
    obj = pdb_obj(minAvailable=2)
    obj["status"] = {"disruptionsAllowed": 5}
    s.prepare_for_create(obj)
    assert obj["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                             "expectedPods": 0}
    assert obj["metadata"]["generation"] == 1
    status = copy.deepcopy(obj)
    status["status"]["disruptionsAllowed"] = 1
    s.prepare_for_status_update(status, obj)
    assert status["metadata"]["generation"] == 1 and status["status"]["disruptionsAllowed"] == 1
    new = copy.deepcopy(obj)
    new["spec"]["minAvailable"] = "50%"
    s.prepare_for_update(new, obj)
    assert new["metadata"]["generation"] == 2 and new["status"] == obj["status"]


PERCENT = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. "
           "'1%',  or '93%', regex used for validation is '[0-9]+%')")


@pytest.mark.parametrize(("spec", "status", "expected"), [
    pytest.param({"minAvailable": 1, "maxUnavailable": 1}, {}, Cause(
        "FieldValueInvalid", 'Invalid value: {"minAvailable":1,"selector":{"matchLabels":'
        '{"app":"web"}},"maxUnavailable":1}: minAvailable and maxUnavailable cannot be both '
        "set", "spec"), id="both"),
    pytest.param({"minAvailable": -1}, {}, Cause(
        "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0",
        "spec.minAvailable"), id="negative"),
    pytest.param({"maxUnavailable": "120%"}, {}, Cause(
        "FieldValueInvalid", 'Invalid value: "120%": must not be greater than 100%',
        "spec.maxUnavailable"), id="over-100"),
    pytest.param({"maxUnavailable": "half"}, {}, Cause(
        "FieldValueInvalid", f'Invalid value: "half": {PERCENT}', "spec.maxUnavailable"),
        id="bad-percent"),
    pytest.param({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"}, {}, Cause(
        "FieldValueNotSupported", 'Unsupported value: "Never": supported values: '
        '"AlwaysAllow", "IfHealthyBudget"', "spec.unhealthyPodEvictionPolicy"), id="policy"),
    pytest.param({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}, {},
                 Cause("FieldValueRequired", "Required value: must be specified when "
                       "`operator` is 'In' or 'NotIn'", "spec.selector.matchExpressions[0]"
                       ".values"), id="selector"),
    pytest.param({}, {"disruptionsAllowed": -1}, Cause(
        "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0",
        "status.disruptionsAllowed"), id="status-negative"),
    pytest.param({}, {"conditions": [{"type": "DisruptionAllowed", "status": "Maybe",
                                      "reason": "X", "lastTransitionTime": STAMP}]}, Cause(
        "FieldValueNotSupported", 'Unsupported value: "Maybe": supported values: "False", '
        '"True", "Unknown"', "status.conditions[0].status"), id="condition-status"),
    pytest.param({}, {"conditions": [{"type": "DisruptionAllowed", "status": "True",
                                      "reason": "9lives", "lastTransitionTime": STAMP}]}, Cause(
        "FieldValueInvalid", 'Invalid value: "9lives": a condition reason must start with '
        "alphabetic character, optionally followed by a string of alphanumeric characters or "
        "'_,:', and must end with an alphanumeric character or '_'",
        "status.conditions[0].reason"), id="condition-reason"),
    pytest.param({}, {"conditions": [{"type": "DisruptionAllowed", "status": "True",
                                      "reason": "SufficientPods"}]}, Cause(
        "FieldValueRequired", "Required value: must be set",
        "status.conditions[0].lastTransitionTime"), id="condition-time"),
])
def test_pdb_validation(spec: Obj, status: Obj, expected: Cause) -> None:
    obj = pdb_obj(**spec)
    obj["status"] = status
    assert expected in strategy_for("policy", "poddisruptionbudgets").validate(obj)


@pytest.mark.parametrize("spec", [{}, {"minAvailable": 0}, {"minAvailable": "100%"},
                                  {"maxUnavailable": 3}, {"selector": {}},
                                  {"maxUnavailable": "0%",
                                   "unhealthyPodEvictionPolicy": "AlwaysAllow"}])
def test_pdb_valid_specs(spec: Obj) -> None:
    assert strategy_for("policy", "poddisruptionbudgets").validate(pdb_obj(**spec)) == []


def test_pdb_table() -> None:
    a, b = pdb_obj(minAvailable=2), pdb_obj(maxUnavailable="25%")
    a["status"] = {"disruptionsAllowed": 1}
    table = table_for("PodDisruptionBudget", [a, b], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]
    assert [r["cells"][1:4] for r in table["rows"]] == [["2", "N/A", 1], ["N/A", "25%", 0]]


# --- eviction over the real registry -------------------------------------------------------

@pytest.fixture
async def api() -> AsyncIterator[APIState]:
    state = APIState.build(MemoryStore(), inputs=Inputs(now=lambda: NOW))
    feed = asyncio.create_task(state.cache.run())
    await asyncio.wait_for(state.cache.ready.wait(), 5)
    try:
        await bootstrap(state)
        for ns in ("default", "other"):
            if ns != "default":
                await state.registry.create(ctx("namespaces", ns="", name=ns),
                                            {"metadata": {"name": ns}})
            await state.registry.create(ctx("serviceaccounts", ns=ns),
                                        {"metadata": {"name": "default"}})
        yield state
    finally:
        state.cache.close()
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)


def ctx(resource: str, *, name: str = "", ns: str = "default", sub: str = "",
        user: UserInfo = ADMIN, dry_run: bool = False) -> WriteContext:
    group = "policy" if resource == "poddisruptionbudgets" else ""
    rd = lookup(group, "v1", resource)
    assert rd is not None
    return WriteContext(user=user, rd=rd, namespace=ns if rd.namespaced else "", name=name,
                        subresource=sub, field_manager="test", dry_run=dry_run)


async def set_status(api: APIState, resource: str, name: str, status: Obj,
                     ns: str = "default") -> None:
    def write(old: Obj) -> Obj:
        new = copy.deepcopy(old)
        new["status"] = {**(old.get("status") or {}), **status}
        return new

    await api.registry.mutate(ctx(resource, name=name, ns=ns, sub="status"), write)


async def make_pod(api: APIState, name: str, *, app: str = "web", phase: str = "Running",
                   ready: bool = True, ns: str = "default", **meta: Any) -> None:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
    if "node" in meta:
        spec["nodeName"] = meta.pop("node")
    await api.registry.create(ctx("pods", ns=ns), {
        "metadata": {"name": name, "labels": {"app": app}, **meta}, "spec": spec})
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    await set_status(api, "pods", name, {"phase": phase, "conditions": conditions}, ns)
    assert await api.cache.sync()  # admission reads pods from the watch cache


async def make_pdb(api: APIState, name: str = "web", *, allowed: int, healthy: int = 3,
                   desired: int = 2, observed: int = 1, app: str = "web",
                   ns: str = "default", **spec: Any) -> None:
    selector = {"matchLabels": {"app": app}} if app else {}
    await api.registry.create(ctx("poddisruptionbudgets", ns=ns), {
        "metadata": {"name": name}, "spec": {"minAvailable": desired, "selector": selector,
                                             **spec}})
    await set_status(api, "poddisruptionbudgets", name, {
        "observedGeneration": observed, "disruptionsAllowed": allowed,
        "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": healthy}, ns)


def eviction(name: str, **options: Any) -> Obj:
    body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction",
                 "metadata": {"name": name, "namespace": "default"}}
    if options:
        body["deleteOptions"] = options
    return body


async def run(api: APIState, name: str, *, body: Obj | None = None,
              **kw: Any) -> tuple[int, Obj]:
    return await evict(api, ctx("pods", name=name, sub="eviction", **kw),
                       body if body is not None else eviction(name))


async def refused(api: APIState, name: str, **kw: Any) -> APIError:
    with pytest.raises(APIError) as e:
        await run(api, name, **kw)
    return e.value


async def pod_or_none(api: APIState, name: str) -> Obj | None:
    try:
        return await api.storage.get(PODS, "default", name)
    except NotFound:
        return None


async def budget(api: APIState, name: str = "web") -> Obj:
    return await api.storage.get(PDBS, "default", name)


SUCCESS = (201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                 "code": 201})


async def test_no_budget_deletes_the_pod(api: APIState) -> None:
    await make_pod(api, "p")
    await make_pdb(api, allowed=0, app="other")  # selects other pods
    await make_pdb(api, "everything", allowed=0, app="")  # empty selector: nothing here
    assert await run(api, "p") == SUCCESS
    assert await pod_or_none(api, "p") is None


async def test_budget_is_spent_then_refuses(api: APIState) -> None:
    for name in ("p1", "p2", "p3"):
        await make_pod(api, name)
    await make_pdb(api, allowed=1)
    assert await run(api, "p1") == SUCCESS
    assert await pod_or_none(api, "p1") is None
    status = (await budget(api))["status"]
    assert status["disruptionsAllowed"] == 0
    assert status["disruptedPods"] == {"p1": STAMP}
    assert status["conditions"] == [{
        "type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
        "message": "", "observedGeneration": 1, "lastTransitionTime": STAMP}]
    before = await budget(api)
    err = await refused(api, "p2")
    assert (err.code, err.reason, err.message) == (429, "TooManyRequests", VIOLATION)
    assert err.to_status()["details"] == {"causes": [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget web needs 2 healthy pods and has 3 currently"}]}
    assert await pod_or_none(api, "p2") is not None
    assert await budget(api) == before


async def test_budget_behind_its_spec_refuses(api: APIState) -> None:
    await make_pod(api, "p")
    await make_pdb(api, allowed=5, observed=0)
    err = await refused(api, "p")
    assert (err.code, err.message) == (429, VIOLATION)
    assert err.details == {"retryAfterSeconds": 10, "causes": [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget web is still being processed by the server."}]}
    assert await pod_or_none(api, "p") is not None


async def test_two_budgets_are_not_supported(api: APIState) -> None:
    await make_pod(api, "p")
    await make_pdb(api, "a", allowed=1)
    await make_pdb(api, "b", allowed=1)
    assert await run(api, "p") == (500, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "This pod has more than one PodDisruptionBudget, which the eviction "
                   "subresource does not support.", "code": 500})
    assert await pod_or_none(api, "p") is not None
    assert (await budget(api, "a"))["status"]["disruptionsAllowed"] == 1


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Pending"])
async def test_pods_the_budget_does_not_guard(api: APIState, phase: str) -> None:
    await make_pod(api, "p", phase=phase, ready=False)
    await make_pdb(api, allowed=0)
    assert await run(api, "p") == SUCCESS
    assert await pod_or_none(api, "p") is None
    assert (await budget(api))["status"]["disruptionsAllowed"] == 0


async def test_pod_already_being_deleted(api: APIState) -> None:
    await make_pod(api, "p", finalizers=["example.com/hold"])
    await make_pdb(api, allowed=0)
    await api.registry.delete(ctx("pods", name="p"), {})
    assert await run(api, "p") == SUCCESS
    pod = await pod_or_none(api, "p")
    assert pod is not None and pod["metadata"]["deletionTimestamp"]


@pytest.mark.parametrize(("spec", "healthy", "desired", "evicted"), [
    pytest.param({"unhealthyPodEvictionPolicy": "AlwaysAllow"}, 1, 2, True, id="always-allow"),
    pytest.param({}, 2, 2, True, id="healthy-enough"),
    pytest.param({"unhealthyPodEvictionPolicy": "IfHealthyBudget"}, 1, 2, False,
                 id="if-healthy-budget-short"),
    pytest.param({}, 0, 0, False, id="nothing-desired"),
])
async def test_unready_pods(api: APIState, spec: Obj, healthy: int, desired: int,
                            evicted: bool) -> None:
    await make_pod(api, "p", ready=False)
    await make_pdb(api, allowed=0, healthy=healthy, desired=desired, **spec)
    before = await budget(api)
    if evicted:
        assert await run(api, "p") == SUCCESS
        assert await pod_or_none(api, "p") is None
        assert await budget(api) == before  # nothing spent
    else:
        assert (await refused(api, "p")).code == 429
        assert await pod_or_none(api, "p") is not None


async def test_budget_changed_after_the_read_is_honoured(api: APIState) -> None:
    """The disruption controller takes the last disruption away between the eviction's list
    and its write: the compare-and-swap sees the new status and refuses."""
    await make_pod(api, "p")
    await make_pdb(api, allowed=1)
    listed = api.reader.list

    async def racing_list(rd: Any, namespace: str, opts: QueryOptions,
                          flt: Any) -> tuple[list[Obj], Obj]:
        items, meta = await listed(rd, namespace, opts, flt)
        stale = copy.deepcopy(items)
        if rd.resource == "poddisruptionbudgets":
            await set_status(api, "poddisruptionbudgets", "web", {"disruptionsAllowed": 0})
        return stale, meta

    api.reader.list = racing_list  # type: ignore[method-assign]
    assert (await refused(api, "p")).code == 429
    assert await pod_or_none(api, "p") is not None
    assert "disruptedPods" not in (await budget(api))["status"]


async def test_concurrent_evictions_spend_the_budget_once(api: APIState) -> None:
    for name in ("p1", "p2", "p3", "p4"):
        await make_pod(api, name)
    await make_pdb(api, allowed=2, healthy=4)
    results = await asyncio.gather(*(run(api, n) for n in ("p1", "p2", "p3", "p4")),
                                   return_exceptions=True)
    won = [r for r in results if r == SUCCESS]
    lost = [r for r in results if isinstance(r, APIError)]
    assert len(won) == 2 and [e.code for e in lost] == [429, 429]
    status = (await budget(api))["status"]
    assert status["disruptionsAllowed"] == 0 and len(status["disruptedPods"]) == 2
    left = [n for n in ("p1", "p2", "p3", "p4") if await pod_or_none(api, n) is not None]
    assert len(left) == 2 and not set(left) & set(status["disruptedPods"])


async def test_delete_options_are_honoured(api: APIState) -> None:
    await make_pod(api, "bound", node="n1")
    assert await run(api, "bound", body=eviction("bound", gracePeriodSeconds=7)) == SUCCESS
    pod = await pod_or_none(api, "bound")
    assert pod is not None and pod["metadata"]["deletionGracePeriodSeconds"] == 7
    await make_pod(api, "p")
    err = await refused(api, "p", body=eviction("p", preconditions={"uid": "not-its-uid"}))
    assert err.code == 409 and "Precondition failed" in err.message
    assert await pod_or_none(api, "p") is not None


async def test_dry_run_changes_nothing(api: APIState) -> None:
    await make_pod(api, "p")
    await make_pdb(api, allowed=1)
    before = await budget(api)
    assert await run(api, "p", dry_run=True) == SUCCESS
    assert await run(api, "p", body=eviction("p", dryRun=["All"])) == SUCCESS
    assert await pod_or_none(api, "p") is not None
    assert await budget(api) == before


@pytest.mark.parametrize(("name", "body", "code", "message"), [
    ("p", eviction("q"), 400, "name in URL does not match name in Eviction object"),
    ("p", {**eviction("p"), "metadata": {"name": "p", "namespace": "other"}}, 400,
     "the namespace of the provided object does not match the namespace sent on the request"),
    ("gone", eviction("gone"), 404, 'pods "gone" not found'),
])
async def test_bad_requests(api: APIState, name: str, body: Obj, code: int,
                            message: str) -> None:
    await make_pod(api, "p")
    err = await refused(api, name, body=body)
    assert (err.code, err.message) == (code, message)
    assert await pod_or_none(api, "p") is not None


async def test_admission_sees_the_eviction(api: APIState) -> None:
    await make_pod(api, "p", node="n2")
    node = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
    err = await refused(api, "p", user=node)
    assert (err.code, err.message) == (
        403, ('pods "p" is forbidden: node n1 can only evict pods with spec.nodeName set to '
              "itself"))


async def test_system_priority_classes_are_bootstrapped(api: APIState) -> None:
    classes = {o["metadata"]["name"]: (o["value"], o.get("globalDefault", False))
               for o in api.view.list("scheduling.k8s.io", "priorityclasses")}
    assert classes == {"system-node-critical": (2000001000, False),
                       "system-cluster-critical": (2000000000, False)}
    await make_pod(api, "p")
    pod = await pod_or_none(api, "p")
    assert pod is not None
    assert (pod["spec"]["priority"], pod["spec"]["preemptionPolicy"]) == (
        0, "PreemptLowerPriority")
