"""control.api.taints and control.api.nodeaffinity: toleration and node-selector matching with
Kubernetes' semantics (component-helpers' ToleratesTaint, nodeaffinity), table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.nodeaffinity import PreferredTerms, RequiredNodeAffinity
from control.api.taints import find_untolerated_taint, tolerates

from .scheduler_objects import node, pod

T = dict[str, Any]


@pytest.mark.parametrize("toleration, taint, want", [
    pytest.param({"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"},
                 {"key": "a", "value": "1", "effect": "NoSchedule"}, True, id="equal-all"),
    pytest.param({"key": "a", "value": "1"}, {"key": "a", "value": "1", "effect": "NoExecute"},
                 True, id="empty-effect-matches-any-effect"),
    pytest.param({"key": "a", "value": "2", "effect": "NoSchedule"},
                 {"key": "a", "value": "1", "effect": "NoSchedule"}, False, id="value-differs"),
    pytest.param({"key": "a", "operator": "Exists"}, {"key": "a", "value": "x",
                                                     "effect": "NoSchedule"},
                 True, id="exists-ignores-value"),
    pytest.param({"operator": "Exists"}, {"key": "anything", "effect": "NoExecute"}, True,
                 id="empty-key-exists-tolerates-everything"),
    pytest.param({"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"},
                 {"key": "a", "effect": "NoSchedule"}, False, id="effect-differs"),
    pytest.param({"key": "b", "operator": "Exists"}, {"key": "a", "effect": "NoSchedule"}, False,
                 id="key-differs"),
    pytest.param({"key": "a", "value": ""}, {"key": "a", "effect": "NoSchedule"}, True,
                 id="equal-empty-values"),
    pytest.param({"key": "a", "operator": "Gt", "value": "1"},
                 {"key": "a", "value": "2", "effect": "NoSchedule"}, False,
                 id="unknown-operator-tolerates-nothing"),
])
def test_tolerates(toleration: T, taint: T, want: bool) -> None:
    assert tolerates(toleration, taint) is want


def test_find_untolerated_taint_skips_prefer_no_schedule() -> None:
    taints = [{"key": "soft", "effect": "PreferNoSchedule"},
              {"key": "hard", "value": "v", "effect": "NoExecute"}]
    assert find_untolerated_taint(taints, []) == taints[1]
    assert find_untolerated_taint(taints, [{"key": "hard", "operator": "Exists"}]) is None


def _aff(*terms: T) -> T:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}


def _expr(key: str, op: str, *values: str) -> T:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


N = node("n1", labels={"zone": "a", "gpu": "4", "disk": "ssd", "weird": "x1"})


@pytest.mark.parametrize("spec, want", [
    pytest.param({}, True, id="no-constraints"),
    pytest.param({"nodeSelector": {"disk": "ssd"}}, True, id="selector-match"),
    pytest.param({"nodeSelector": {"disk": "hdd"}}, False, id="selector-value-differs"),
    pytest.param({"nodeSelector": {"disk": "ssd", "other": "x"}}, False,
                 id="selector-all-pairs-needed"),
    pytest.param({"nodeSelector": {}}, True, id="empty-selector-matches-all"),
    pytest.param({"affinity": _aff(_expr("zone", "In", "a", "b"))}, True, id="in"),
    pytest.param({"affinity": _aff(_expr("zone", "NotIn", "a"))}, False, id="notin"),
    pytest.param({"affinity": _aff(_expr("missing", "NotIn", "a"))}, True,
                 id="notin-absent-key-matches"),
    pytest.param({"affinity": _aff(_expr("zone", "Exists"))}, True, id="exists"),
    pytest.param({"affinity": _aff(_expr("zone", "DoesNotExist"))}, False, id="doesnotexist"),
    pytest.param({"affinity": _aff(_expr("gpu", "Gt", "3"))}, True, id="gt"),
    pytest.param({"affinity": _aff(_expr("gpu", "Gt", "4"))}, False, id="gt-strict"),
    pytest.param({"affinity": _aff(_expr("gpu", "Lt", "5"))}, True, id="lt"),
    pytest.param({"affinity": _aff(_expr("weird", "Gt", "0"))}, False,
                 id="gt-non-integer-label-never-matches"),
    pytest.param({"affinity": _aff(_expr("missing", "Lt", "9"))}, False, id="lt-absent-label"),
    pytest.param({"affinity": _aff(_expr("zone", "In", "z"), _expr("disk", "In", "ssd"))}, True,
                 id="terms-are-ored"),
    pytest.param({"affinity": _aff({"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a"]},
        {"key": "disk", "operator": "In", "values": ["hdd"]}]})}, False,
        id="expressions-are-anded"),
    pytest.param({"affinity": _aff({})}, False, id="empty-term-matches-nothing"),
    pytest.param({"affinity": _aff({"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]})}, True,
        id="match-fields-name"),
    pytest.param({"affinity": _aff({"matchFields": [
        {"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]})}, False,
        id="match-fields-notin"),
    pytest.param({"nodeSelector": {"disk": "ssd"}, "affinity": _aff(_expr("zone", "In", "b"))},
                 False, id="selector-and-affinity-both-needed"),
    pytest.param({"affinity": _aff(_expr("zone", "Bogus", "a"))}, False,
                 id="bad-operator-matches-nothing"),
    pytest.param({"affinity": _aff(_expr("zone", "Bogus", "a"), _expr("zone", "In", "a"))}, True,
                 id="bad-term-skipped-good-term-used"),
    pytest.param({"affinity": _aff(_expr("gpu", "Gt", "1", "2"))}, False,
                 id="gt-two-values-malformed"),
    pytest.param({"affinity": _aff(_expr("zone", "In"))}, False, id="in-without-values"),
])
def test_required_node_affinity(spec: T, want: bool) -> None:
    req = RequiredNodeAffinity.of_pod(pod("p", **spec))
    assert req.matches(N) is want


def test_malformed_affinity_is_reported_not_raised() -> None:
    req = RequiredNodeAffinity.of_pod(pod("p", affinity=_aff(_expr("zone", "Bogus", "a"))))
    assert req.errors and "Unsupported value" in req.errors[0]
    req = RequiredNodeAffinity.of_pod(pod("p", affinity=_aff(_expr("gpu", "Lt", "x"))))
    assert req.errors and "integer" in req.errors[0]


def test_preferred_terms_sum_weights_of_matching_terms() -> None:
    spec = {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 5, "preference": _expr("zone", "In", "a")},
        {"weight": 7, "preference": _expr("disk", "In", "ssd")},
        {"weight": 11, "preference": _expr("disk", "In", "hdd")},
        {"weight": 13, "preference": {}},
    ]}}}
    assert PreferredTerms.of_pod(pod("p", **spec)).score(N) == 12
