"""PriorityClasses and the Priority admission plugin: the class strategy (defaults, the
system-class and user-value rules, immutable value and policy), pods' priority resolved from
their class or the global default with kube-apiserver's refusals, at most one global default,
and the Table row."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from control.api.errors import APIError, Cause
from control.apiserver.admission import AdmissionRequest, Priority
from control.apiserver.rbac import UserInfo
from control.apiserver.strategies import strategy_for
from control.apiserver.strategies.scheduling import SYSTEM_PRIORITY_CLASSES
from control.apiserver.tables import table_for

Obj = dict[str, Any]
ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))
GROUP, RESOURCE = "scheduling.k8s.io", "priorityclasses"
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def pc(name: str, value: int, **more: Any) -> Obj:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, **more}


def created(obj: Obj) -> Obj:
    strategy_for(GROUP, RESOURCE).prepare_for_create(obj)
    return obj


class View:
    """The watch cache, holding PriorityClasses."""

    def __init__(self, *classes: Obj) -> None:
        self.classes = {c["metadata"]["name"]: created(copy.deepcopy(c)) for c in classes}

    def get(self, group: str, resource: str, namespace: str, name: str) -> Obj | None:
        return self.classes.get(name) if (group, resource) == (GROUP, RESOURCE) else None

    async def get_fresh(self, group: str, resource: str, namespace: str,
                        name: str) -> Obj | None:
        return self.get(group, resource, namespace, name)

    def list(self, group: str, resource: str, namespace: str = "") -> list[Obj]:
        return list(self.classes.values()) if (group, resource) == (GROUP, RESOURCE) else []


# --- the strategy --------------------------------------------------------------------------

def test_defaults_and_generation() -> None:
    s = strategy_for(GROUP, RESOURCE)
    obj = created(pc("high", 1000))
    assert obj["preemptionPolicy"] == "PreemptLowerPriority"
    assert obj["metadata"]["generation"] == 1
    new = copy.deepcopy(obj)
    new["description"] = "now described"
    s.prepare_for_update(new, obj)
    assert new["metadata"]["generation"] == 1 and s.validate_update(new, obj) == []
    assert created(pc("quiet", 5, preemptionPolicy="Never"))["preemptionPolicy"] == "Never"


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param(pc("huge", 1_000_000_001), Cause(
        "FieldValueForbidden", "Forbidden: maximum allowed value of a user defined priority is "
        "1000000000", "value"), id="user-max"),
    pytest.param(pc("system-mine", 10), Cause(
        "FieldValueForbidden", "Forbidden: priority class names with 'system-' prefix are "
        "reserved for system use only. error: system-mine is not a known system priority "
        "class", "metadata.name"), id="system-prefix"),
    pytest.param(pc("system-node-critical", 5), Cause(
        "FieldValueForbidden", "Forbidden: priority class names with 'system-' prefix are "
        "reserved for system use only. error: value of system-node-critical PriorityClass "
        "must be 2000001000", "metadata.name"), id="system-value"),
    pytest.param(pc("system-cluster-critical", 2_000_000_000, globalDefault=True), Cause(
        "FieldValueForbidden", "Forbidden: priority class names with 'system-' prefix are "
        "reserved for system use only. error: globalDefault of system-cluster-critical "
        "PriorityClass must be false", "metadata.name"), id="system-default"),
    pytest.param(pc("p", 1, preemptionPolicy="Sometimes"), Cause(
        "FieldValueNotSupported", 'Unsupported value: "Sometimes": supported values: '
        '"PreemptLowerPriority", "Never"', "preemptionPolicy"), id="policy"),
    pytest.param(pc("Upper", 1), Cause(
        "FieldValueInvalid", 'Invalid value: "Upper": a lowercase RFC 1123 subdomain must '
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
        "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        "metadata.name"), id="name"),
])
def test_validation(obj: Obj, expected: Cause) -> None:
    assert strategy_for(GROUP, RESOURCE).validate(created(obj)) == [expected]


def test_system_classes_and_negative_values_are_valid() -> None:
    s = strategy_for(GROUP, RESOURCE)
    for name, value, description in SYSTEM_PRIORITY_CLASSES:
        assert s.validate(created(pc(name, value, description=description))) == []
    assert s.validate(created(pc("low", -5))) == []


def test_value_and_policy_are_fixed() -> None:
    s = strategy_for(GROUP, RESOURCE)
    old = created(pc("high", 1000))
    new = copy.deepcopy(old)
    new["value"], new["preemptionPolicy"] = 2000, "Never"
    assert s.validate_update(new, old) == [
        Cause("FieldValueForbidden", "Forbidden: may not be changed in an update.", "value"),
        Cause("FieldValueInvalid", 'Invalid value: "Never": field is immutable',
              "preemptionPolicy")]


def test_table() -> None:
    table = table_for("PriorityClass", [created(pc("high", 1000, globalDefault=True))],
                      now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    assert table["rows"][0]["cells"] == ["high", 1000, True, "<unknown>",
                                         "PreemptLowerPriority"]


# --- the admission plugin ------------------------------------------------------------------

def pod(name: str = "p", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def request(op: str, obj: Obj, *, resource: str = "pods", group: str = "",
            subresource: str = "", old: Obj | None = None) -> AdmissionRequest:
    namespace = "default" if resource == "pods" else ""
    return AdmissionRequest(operation=op, group=group, version="v1", resource=resource,
                            subresource=subresource, kind="Pod", namespace=namespace,
                            name=obj["metadata"]["name"], obj=obj, old_obj=old, user=ADMIN)


HIGH = pc("high", 1000)
NEVER = pc("never", 7, preemptionPolicy="Never")
DEFAULT = pc("standard", 100, globalDefault=True)


@pytest.mark.parametrize(("view", "spec", "expected"), [
    pytest.param(View(), {}, ("", 0, "PreemptLowerPriority"), id="no-classes"),
    pytest.param(View(HIGH), {}, ("", 0, "PreemptLowerPriority"), id="no-default"),
    pytest.param(View(HIGH, DEFAULT), {}, ("standard", 100, "PreemptLowerPriority"),
                 id="global-default"),
    pytest.param(View(HIGH, DEFAULT), {"priorityClassName": "high"},
                 ("high", 1000, "PreemptLowerPriority"), id="named"),
    pytest.param(View(NEVER), {"priorityClassName": "never"}, ("never", 7, "Never"),
                 id="never"),
    pytest.param(View(HIGH), {"priorityClassName": "high", "priority": 1000},
                 ("high", 1000, "PreemptLowerPriority"), id="agreeing-priority"),
    pytest.param(View(pc("twin-a", 5, globalDefault=True), pc("twin-b", 3, globalDefault=True)),
                 {}, ("twin-b", 3, "PreemptLowerPriority"), id="raced-defaults-lowest-wins"),
])
async def test_pod_priority_is_resolved(view: View, spec: Obj,
                                        expected: tuple[str, int, str]) -> None:
    obj = pod(**spec)
    await Priority().admit(request("CREATE", obj), view)
    got = obj["spec"]
    assert (got.get("priorityClassName", ""), got["priority"], got["preemptionPolicy"]) == \
        expected


@pytest.mark.parametrize(("view", "spec", "message"), [
    pytest.param(View(HIGH), {"priorityClassName": "nope"},
                 'pods "p" is forbidden: no PriorityClass with name nope was found',
                 id="missing-class"),
    pytest.param(View(HIGH), {"priorityClassName": "high", "priority": 5},
                 'pods "p" is forbidden: the integer value of priority (5) must not be provided '
                 "in pod spec; priority admission controller computed 1000 from the given "
                 "PriorityClass name", id="priority-set"),
    pytest.param(View(), {"priority": 3},
                 'pods "p" is forbidden: the integer value of priority (3) must not be provided '
                 "in pod spec; priority admission controller computed 0 from the given "
                 "PriorityClass name", id="priority-without-class"),
    pytest.param(View(NEVER), {"priorityClassName": "never",
                               "preemptionPolicy": "PreemptLowerPriority"},
                 'pods "p" is forbidden: the string value of PreemptionPolicy '
                 "(PreemptLowerPriority) must not be provided in pod spec; priority admission "
                 "controller computed Never from the given PriorityClass name", id="policy-set"),
])
async def test_pod_priority_refusals(view: View, spec: Obj, message: str) -> None:
    obj = pod(**spec)
    before = copy.deepcopy(obj)
    with pytest.raises(APIError) as e:
        await Priority().admit(request("CREATE", obj), view)
    assert (e.value.code, e.value.reason, e.value.message) == (403, "Forbidden", message)
    assert obj["spec"].get("priority") == before["spec"].get("priority")


async def test_pod_update_keeps_the_stored_priority_and_subresources_are_ignored() -> None:
    old = pod(priorityClassName="high", priority=1000, preemptionPolicy="PreemptLowerPriority")
    new = pod(priorityClassName="high")
    await Priority().admit(request("UPDATE", new, old=old), View())
    assert (new["spec"]["priority"], new["spec"]["preemptionPolicy"]) == (
        1000, "PreemptLowerPriority")
    status = pod(priorityClassName="nope")
    await Priority().admit(request("CREATE", status, subresource="status"), View())
    assert "priority" not in status["spec"]


@pytest.mark.parametrize(("op", "view", "obj", "message"), [
    pytest.param("CREATE", View(DEFAULT), pc("other", 1, globalDefault=True),
                 'priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass '
                 "standard is already marked as default. Only one default can exist",
                 id="second-default"),
    pytest.param("UPDATE", View(DEFAULT, HIGH), pc("high", 1000, globalDefault=True),
                 'priorityclasses.scheduling.k8s.io "high" is forbidden: PriorityClass '
                 "standard is already marked as default. Only one default can exist",
                 id="marking-another"),
    pytest.param("UPDATE", View(DEFAULT), pc("standard", 100, globalDefault=True), None,
                 id="the-default-itself"),
    pytest.param("CREATE", View(HIGH), pc("first", 1, globalDefault=True), None,
                 id="first-default"),
    pytest.param("CREATE", View(DEFAULT), pc("plain", 1), None, id="not-a-default"),
])
async def test_one_global_default(op: str, view: View, obj: Obj, message: str | None) -> None:
    req = request(op, obj, resource=RESOURCE, group=GROUP)
    if message is None:
        await Priority().validate(req, view)
        return
    with pytest.raises(APIError) as e:
        await Priority().validate(req, view)
    assert (e.value.code, e.value.message) == (403, message)
