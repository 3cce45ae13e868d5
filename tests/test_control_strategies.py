"""Per-resource strategies: defaults, status and generation handling, validation causes
(field and message as Kubernetes words them) and update rules."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from control.api.catalog import RESOURCES
from control.api.errors import Cause, Invalid
from control.api.quantity import quantity_or_none
from control.apiserver.strategies import (
    JobStrategy,
    NamespaceStrategy,
    PodStrategy,
    ServiceStrategy,
    Strategy,
    strategy_for,
    validate_object_meta,
)
from control.apiserver.strategies.pods import POD_UPDATE_FORBIDDEN, qos_class

RBAC = "rbac.authorization.k8s.io"
UID = "0b7a5b3e-5f2c-4d6a-9d0e-1f2a3b4c5d6e"
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
Obj = dict[str, Any]


def _meta(name: str, namespace: str | None = "default", **more: Any) -> Obj:
    return {"name": name, **({"namespace": namespace} if namespace else {}), **more}


def _template(labels: dict[str, str], restart: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": labels}, "spec": spec}


def _workload(kind: str, **spec: Any) -> Obj:
    base = {"selector": {"matchLabels": {"app": "web"}}, "template": _template({"app": "web"})}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": _meta("web"),
            "spec": {**base, **spec}}


EXAMPLES: dict[tuple[str, str], Obj] = {
    ("", "namespaces"): {"metadata": _meta("team-a", None)},
    ("", "nodes"): {"metadata": _meta("node-1.example", None), "spec": {"podCIDR": "10.0.1.0/24"},
                    "status": {"capacity": {"cpu": "4"}}},
    ("", "pods"): {"metadata": _meta("p"), "spec": _template({})["spec"]},
    ("", "services"): {"metadata": _meta("web"),
                       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    ("", "endpoints"): {"metadata": _meta("web"), "subsets": [
        {"addresses": [{"ip": "10.1.0.5"}], "ports": [{"port": 8080}]}]},
    ("", "configmaps"): {"metadata": _meta("cfg"), "data": {"app.conf": "x=1"}},
    ("", "secrets"): {"metadata": _meta("s"), "data": {"token": "c2VjcmV0"}},
    ("", "events"): {"metadata": _meta("p.1"), "involvedObject": {
        "kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started"},
    ("", "serviceaccounts"): {"metadata": _meta("builder")},
    ("", "resourcequotas"): {"metadata": _meta("q"), "spec": {"hard": {"pods": "10",
                                                                       "requests.cpu": "4"}}},
    ("", "limitranges"): {"metadata": _meta("lr"), "spec": {"limits": [
        {"type": "Container", "default": {"cpu": "500m"}, "max": {"cpu": "1"}}]}},
    ("apps", "deployments"): _workload("Deployment"),
    ("apps", "replicasets"): _workload("ReplicaSet"),
    ("apps", "daemonsets"): _workload("DaemonSet"),
    ("apps", "statefulsets"): _workload("StatefulSet", serviceName="web"),
    ("batch", "jobs"): {"metadata": _meta("pi"), "spec": {"template": _template({}, "Never")}},
    ("coordination.k8s.io", "leases"): {"metadata": _meta("lock"), "spec": {
        "holderIdentity": "a", "leaseDurationSeconds": 15}},
    (RBAC, "roles"): {"metadata": _meta("reader"), "rules": [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]},
    (RBAC, "clusterroles"): {"metadata": _meta("system:reader", None), "rules": [
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
    (RBAC, "rolebindings"): {"metadata": _meta("rb"), "roleRef": {
        "apiGroup": RBAC, "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "User", "name": "jane"}]},
    ("apps", "controllerrevisions"): {"metadata": _meta("web-5d8b9c"), "revision": 1,
                                      "data": {"spec": {"template": {"$patch": "replace"}}}},
    ("batch", "cronjobs"): {"metadata": _meta("tick"), "spec": {
        "schedule": "*/1 * * * *",
        "jobTemplate": {"spec": {"template": _template({}, "OnFailure")}}}},
    ("discovery.k8s.io", "endpointslices"): {
        "metadata": _meta("web-abc12", labels={"kubernetes.io/service-name": "web"}),
        "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.1.5"]}],
        "ports": [{"name": "http", "port": 80}]},
    ("policy", "poddisruptionbudgets"): {"metadata": _meta("web"), "spec": {
        "minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
    ("scheduling.k8s.io", "priorityclasses"): {"metadata": _meta("high", None),
                                               "value": 1000},
    (RBAC, "clusterrolebindings"): {"metadata": _meta("crb", None), "roleRef": {
        "apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}]},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {
        "metadata": _meta("widgets.example.com", None), "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}},
}
STORED = [(r.group, r.resource) for r in RESOURCES if not r.virtual]


def example(group: str, resource: str) -> Obj:
    return copy.deepcopy(EXAMPLES[(group, resource)])


def created(group: str, resource: str, obj: Obj | None = None) -> Obj:
    """``obj`` (default: the example) as the registry would store it."""
    obj = example(group, resource) if obj is None else obj
    s = strategy_for(group, resource)
    s.prepare_for_create(obj)
    obj["metadata"].update(uid=UID, creationTimestamp="2024-01-01T00:00:00Z")
    if s.needs_uid_selector:
        s.apply_uid(obj, UID)
    if isinstance(s, ServiceStrategy) and s.wants_cluster_ip(obj):
        s.apply_cluster_ip(obj, "10.96.0.10")
    return obj


def causes_of(group: str, resource: str, edit: Callable[[Obj], Any]) -> list[Cause]:
    obj = created(group, resource)
    edit(obj)
    return strategy_for(group, resource).validate(obj)


# --- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "resource"), STORED)
def test_every_stored_resource_has_a_strategy_and_its_example_is_valid(
        group: str, resource: str) -> None:
    s: Strategy = strategy_for(group, resource)
    assert strategy_for(group, resource) is s
    entry = next(r for r in RESOURCES if (r.group, r.resource) == (group, resource))
    assert s.status_subresource == (entry.subresource("status") is not None)
    assert s.validate(created(group, resource)) == []


@pytest.mark.parametrize(("group", "resource"), STORED)
def test_prepare_is_idempotent_and_leaves_old_alone(group: str, resource: str) -> None:
    s = strategy_for(group, resource)
    once = created(group, resource)
    twice = copy.deepcopy(once)
    s.prepare_for_create(twice)
    assert twice == once
    old, new = copy.deepcopy(once), copy.deepcopy(once)
    s.prepare_for_update(new, old)
    assert old == once and new == once
    s.prepare_for_status_update(new, old)
    assert old == once and new == once
    assert s.validate_update(new, old) == []


@pytest.mark.parametrize(("group", "resource"), [
    ("authorization.k8s.io", "selfsubjectaccessreviews"), ("", "widgets"), ("apps", "pods")])
def test_unknown_or_virtual_resources_have_none(group: str, resource: str) -> None:
    with pytest.raises(KeyError):
        strategy_for(group, resource)


def test_generation_is_tracked_by_the_controllers_of_pods_only() -> None:
    tracked = {k for k in STORED if strategy_for(*k).tracks_generation}
    assert tracked == {("apps", "deployments"), ("apps", "replicasets"), ("apps", "daemonsets"),
                       ("apps", "statefulsets"), ("batch", "jobs"), ("batch", "cronjobs"),
                       ("policy", "poddisruptionbudgets"), ("discovery.k8s.io", "endpointslices"),
                       ("scheduling.k8s.io", "priorityclasses"),
                       ("apiextensions.k8s.io", "customresourcedefinitions")}


# --- defaults -------------------------------------------------------------------------------

CONTAINER = ("spec", "containers", 0)
TEMPLATE_CONTAINER = ("spec", "template", "spec", "containers", 0)


@pytest.mark.parametrize(("key", "path", "expected"), [
    pytest.param(("", "pods"), ("spec", "restartPolicy"), "Always", id="pod-restart"),
    pytest.param(("", "pods"), ("spec", "dnsPolicy"), "ClusterFirst", id="pod-dns"),
    pytest.param(("", "pods"), ("spec", "schedulerName"), "default-scheduler", id="pod-sched"),
    pytest.param(("", "pods"), ("spec", "terminationGracePeriodSeconds"), 30, id="pod-grace"),
    pytest.param(("", "pods"), ("spec", "securityContext"), {}, id="pod-secctx"),
    pytest.param(("", "pods"), ("spec", "enableServiceLinks"), True, id="pod-links"),
    pytest.param(("", "pods"), (*CONTAINER, "imagePullPolicy"), "IfNotPresent", id="pull-tag"),
    pytest.param(("", "pods"), (*CONTAINER, "terminationMessagePath"), "/dev/termination-log",
                 id="term-path"),
    pytest.param(("", "pods"), (*CONTAINER, "terminationMessagePolicy"), "File", id="term-pol"),
    pytest.param(("", "pods"), (*CONTAINER, "resources"), {}, id="resources"),
    pytest.param(("", "pods"), ("status",), {"phase": "Pending", "qosClass": "BestEffort"},
                 id="pod-status"),
    pytest.param(("apps", "deployments"), ("spec", "replicas"), 1, id="deploy-replicas"),
    pytest.param(("apps", "deployments"), ("spec", "strategy"), {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        id="deploy-strategy"),
    pytest.param(("apps", "deployments"), ("spec", "revisionHistoryLimit"), 10, id="deploy-rhl"),
    pytest.param(("apps", "deployments"), ("spec", "progressDeadlineSeconds"), 600,
                 id="deploy-pds"),
    pytest.param(("apps", "deployments"), ("spec", "template", "spec", "restartPolicy"),
                 "Always", id="deploy-template-restart"),
    pytest.param(("apps", "deployments"), (*TEMPLATE_CONTAINER, "imagePullPolicy"),
                 "IfNotPresent", id="deploy-template-pull"),
    pytest.param(("apps", "deployments"), ("status",), {}, id="deploy-status"),
    pytest.param(("apps", "deployments"), ("metadata", "generation"), 1, id="deploy-gen"),
    pytest.param(("apps", "replicasets"), ("spec", "replicas"), 1, id="rs-replicas"),
    pytest.param(("apps", "daemonsets"), ("spec", "updateStrategy"), {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        id="ds-strategy"),
    pytest.param(("apps", "daemonsets"), ("spec", "revisionHistoryLimit"), 10, id="ds-rhl"),
    pytest.param(("apps", "statefulsets"), ("spec", "podManagementPolicy"), "OrderedReady",
                 id="sts-pmp"),
    pytest.param(("apps", "statefulsets"), ("spec", "updateStrategy"), {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 0}}, id="sts-strategy"),
    pytest.param(("apps", "statefulsets"), ("spec", "replicas"), 1, id="sts-replicas"),
    pytest.param(("batch", "jobs"), ("spec", "completions"), 1, id="job-completions"),
    pytest.param(("batch", "jobs"), ("spec", "parallelism"), 1, id="job-parallelism"),
    pytest.param(("batch", "jobs"), ("spec", "backoffLimit"), 6, id="job-backoff"),
    pytest.param(("batch", "jobs"), ("spec", "completionMode"), "NonIndexed", id="job-mode"),
    pytest.param(("batch", "jobs"), ("spec", "suspend"), False, id="job-suspend"),
    pytest.param(("batch", "jobs"), ("spec", "selector"), {
        "matchLabels": {"batch.kubernetes.io/controller-uid": UID}}, id="job-selector"),
    pytest.param(("batch", "jobs"), ("spec", "template", "metadata", "labels"), {
        "batch.kubernetes.io/controller-uid": UID, "batch.kubernetes.io/job-name": "pi",
        "controller-uid": UID, "job-name": "pi"}, id="job-labels"),
    pytest.param(("", "services"), ("spec", "type"), "ClusterIP", id="svc-type"),
    pytest.param(("", "services"), ("spec", "sessionAffinity"), "None", id="svc-affinity"),
    pytest.param(("", "services"), ("spec", "ports"), [
        {"port": 80, "protocol": "TCP", "targetPort": 80}], id="svc-ports"),
    pytest.param(("", "services"), ("spec", "ipFamilyPolicy"), "SingleStack", id="svc-ipfp"),
    pytest.param(("", "services"), ("spec", "internalTrafficPolicy"), "Cluster", id="svc-itp"),
    pytest.param(("", "services"), ("spec", "clusterIPs"), ["10.96.0.10"], id="svc-ips"),
    pytest.param(("", "services"), ("status",), {"loadBalancer": {}}, id="svc-status"),
    pytest.param(("", "namespaces"), ("spec", "finalizers"), ["kubernetes"], id="ns-final"),
    pytest.param(("", "namespaces"), ("status",), {"phase": "Active"}, id="ns-status"),
    pytest.param(("", "namespaces"), ("metadata", "labels"),
                 {"kubernetes.io/metadata.name": "team-a"}, id="ns-label"),
    pytest.param(("", "nodes"), ("status",), {"capacity": {"cpu": "4"}}, id="node-status-kept"),
    pytest.param(("", "secrets"), ("type",), "Opaque", id="secret-type"),
    pytest.param((RBAC, "rolebindings"), ("subjects", 0, "apiGroup"), RBAC, id="subject-group"),
])
def test_defaults_on_create(key: tuple[str, str], path: tuple[Any, ...], expected: Any) -> None:
    value: Any = created(*key)
    for part in path:
        value = value[part]
    assert value == expected


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("registry:5000/team/app", "Always"), ("registry:5000/team/app:v2", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    pod = example("", "pods")
    pod["spec"]["containers"][0]["image"] = image
    assert created("", "pods", pod)["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_status_is_dropped_on_create_when_it_has_a_subresource() -> None:
    deploy = example("apps", "deployments")
    deploy["status"] = {"replicas": 9}
    assert created("apps", "deployments", deploy)["status"] == {}
    ns = example("", "namespaces")
    ns["status"] = {"phase": "Terminating"}
    assert created("", "namespaces", ns)["status"] == {"phase": "Active"}
    cm = example("", "configmaps")
    assert "generation" not in created("", "configmaps", cm)["metadata"]


@pytest.mark.parametrize(("resource", "zeros"), [
    ("replicasets", {"replicas": 0}),
    ("statefulsets", {"replicas": 0, "availableReplicas": 0}),
    ("daemonsets", {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                    "desiredNumberScheduled": 0, "numberReady": 0}),
])
def test_status_fields_go_always_writes_are_there_as_zeros(resource: str, zeros: Obj) -> None:
    """kube's JSON always has them (no omitempty), and the Python client's models require
    them: a watch of ReplicaSets died on ``status: {}`` before."""
    old = created("apps", resource, example("apps", resource))
    assert old["status"] == zeros
    new = copy.deepcopy(old)
    new["status"] = {"observedGeneration": 1}
    strategy_for("apps", resource).prepare_for_status_update(new, old)
    assert new["status"] == {**zeros, "observedGeneration": 1}


def _resources(req: dict[str, str] | None, lim: dict[str, str] | None) -> Obj:
    return {k: v for k, v in (("requests", req), ("limits", lim)) if v is not None}


@pytest.mark.parametrize(("resources", "qos"), [
    ({}, "BestEffort"),
    (_resources({"cpu": "100m"}, None), "Burstable"),
    (_resources(None, {"cpu": "1", "memory": "1Gi"}), "Guaranteed"),  # requests from limits
    (_resources({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"}),
     "Guaranteed"),
    (_resources({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}), "Burstable"),
])
def test_pod_qos_class(resources: Obj, qos: str) -> None:
    pod = example("", "pods")
    pod["spec"]["containers"][0]["resources"] = resources
    assert created("", "pods", pod)["status"]["qosClass"] == qos
    assert qos_class(pod["spec"]) == qos


def test_secret_string_data_is_merged_into_data() -> None:
    secret = example("", "secrets")
    secret["stringData"] = {"password": "hunter2", "token": "override"}
    out = created("", "secrets", secret)
    assert "stringData" not in out
    assert out["data"] == {"token": "b3ZlcnJpZGU=", "password": "aHVudGVyMg=="}


# --- generation and status ------------------------------------------------------------------


def _updated(key: tuple[str, str], edit: Callable[[Obj], Any], *, status: bool = False) -> Obj:
    old = created(*key)
    new = copy.deepcopy(old)
    edit(new)
    s = strategy_for(*key)
    (s.prepare_for_status_update if status else s.prepare_for_update)(new, old)
    return new


def _set(*path: Any, value: Any) -> Callable[[Obj], None]:
    def edit(obj: Obj) -> None:
        target: Any = obj
        for part in path[:-1]:
            target = target[part] if isinstance(part, int) else target.setdefault(part, {})
        target[path[-1]] = value
    return edit


DEPLOY = ("apps", "deployments")


@pytest.mark.parametrize(("key", "edit", "status", "generation"), [
    pytest.param(DEPLOY, _set("spec", "replicas", value=3), False, 2, id="spec-change"),
    pytest.param(DEPLOY, _set("metadata", "labels", value={"a": "b"}), False, 1, id="labels"),
    pytest.param(DEPLOY, _set("metadata", "annotations", value={"a": "b"}), False, 2,
                 id="deploy-annotations"),
    pytest.param(DEPLOY, _set("status", "replicas", value=3), True, 1, id="status-update"),
    pytest.param(DEPLOY, _set("metadata", "generation", value=7), False, 1, id="client-gen"),
    pytest.param(("apps", "replicasets"), _set("metadata", "annotations", value={"a": "b"}),
                 False, 1, id="rs-annotations"),
    pytest.param(("batch", "jobs"), _set("spec", "parallelism", value=4), False, 2, id="job"),
    pytest.param(("", "pods"), _set("spec", "activeDeadlineSeconds", value=5), False, None,
                 id="untracked"),
])
def test_generation(key: tuple[str, str], edit: Callable[[Obj], Any], status: bool,
                    generation: int | None) -> None:
    assert _updated(key, edit, status=status)["metadata"].get("generation") == generation


def test_main_update_keeps_status_and_status_update_keeps_everything_else() -> None:
    old = created(*DEPLOY)
    old["status"] = {"replicas": 1}
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 5}
    new["spec"]["replicas"] = 5
    strategy_for(*DEPLOY).prepare_for_update(new, old)
    assert new["status"] == {"replicas": 1} and new["spec"]["replicas"] == 5

    new = copy.deepcopy(old)
    new["status"] = {"replicas": 5}
    new["spec"]["replicas"] = 9
    new["metadata"]["labels"] = {"sneaky": "yes"}
    new["metadata"]["resourceVersion"] = "42"
    strategy_for(*DEPLOY).prepare_for_status_update(new, old)
    assert new["status"] == {"replicas": 5}
    assert new["spec"] == old["spec"]
    assert "labels" not in new["metadata"] and new["metadata"]["resourceVersion"] == "42"
    assert strategy_for(*DEPLOY).validate_update(new, old) == []


def test_deployment_status_writes_carry_annotations_as_kube() -> None:
    """The deployment controller records its revision annotation through status writes
    (kube's deploymentStatusStrategy resets only spec and labels); a ReplicaSet's may not."""
    new = _updated(DEPLOY, _set("metadata", "annotations",
                                value={"deployment.kubernetes.io/revision": "2"}), status=True)
    assert new["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "2"}
    assert new["metadata"]["generation"] == 1
    rs = _updated(("apps", "replicasets"), _set("metadata", "annotations", value={"a": "b"}),
                  status=True)
    assert "annotations" not in rs["metadata"]


def test_update_keeps_uid_and_creation_timestamp_left_out() -> None:
    new = _updated(("", "configmaps"), lambda o: o["metadata"].pop("uid"))
    assert new["metadata"]["uid"] == UID


# --- validation -----------------------------------------------------------------------------

POD, JOB, SVC = ("", "pods"), ("batch", "jobs"), ("", "services")


def _containers(value: Any) -> Callable[[Obj], None]:
    return _set("spec", "containers", value=value)


@pytest.mark.parametrize(("key", "edit", "expected"), [
    pytest.param(POD, _containers([]),
                 Cause("FieldValueRequired", "Required value", "spec.containers"),
                 id="no-containers"),
    pytest.param(POD, lambda o: o["spec"]["containers"][0].pop("image"),
                 Cause("FieldValueRequired", "Required value", "spec.containers[0].image"),
                 id="no-image"),
    pytest.param(POD, _set("metadata", "name", value="Bad_Name"),
                 Cause("FieldValueInvalid", f'Invalid value: "Bad_Name": {SUBDOMAIN_MSG}',
                       "metadata.name"), id="bad-name"),
    pytest.param(POD, _set("metadata", "name", value=""),
                 Cause("FieldValueRequired", "Required value: name or generateName is required",
                       "metadata.name"), id="no-name"),
    pytest.param(POD, _set("metadata", "labels", value={"app": "bad value!"}),
                 Cause("FieldValueInvalid",
                       'Invalid value: "bad value!": a valid label must be an empty string or '
                       "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                       "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                       "'12345', regex used for validation is "
                       "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')", "metadata.labels"),
                 id="bad-label-value"),
    pytest.param(POD, _set("metadata", "annotations", value={"big": "x" * 262145}),
                 Cause("FieldValueTooLong", "Too long: must have at most 262144 bytes",
                       "metadata.annotations"), id="annotations-too-big"),
    pytest.param(POD, _set("metadata", "namespace", value=""),
                 Cause("FieldValueRequired", "Required value", "metadata.namespace"),
                 id="no-namespace"),
    pytest.param(POD, _set("metadata", "ownerReferences", value=[{"apiVersion": "apps/v1",
                                                                  "kind": "ReplicaSet",
                                                                  "name": "rs"}]),
                 Cause("FieldValueInvalid", 'Invalid value: "": uid must not be empty',
                       "metadata.ownerReferences.uid"), id="owner-no-uid"),
    pytest.param(POD, _set("metadata", "finalizers", value=["bad finalizer"]),
                 Cause("FieldValueInvalid", 'Invalid value: "bad finalizer": name part must '
                       "consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                       "or '123-abc', regex used for validation is "
                       "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')", "metadata.finalizers"),
                 id="bad-finalizer"),
    pytest.param(POD, _set("spec", "restartPolicy", value="Sometimes"),
                 Cause("FieldValueNotSupported", 'Unsupported value: "Sometimes": supported '
                       'values: "Always", "OnFailure", "Never"', "spec.restartPolicy"),
                 id="restart-policy"),
    pytest.param(POD, lambda o: o["spec"]["containers"].append(
        {**o["spec"]["containers"][0]}),
                 Cause("FieldValueDuplicate", 'Duplicate value: "app"',
                       "spec.containers[1].name"), id="duplicate-container"),
    pytest.param(POD, lambda o: o["spec"]["containers"][0].update(
        ports=[{"containerPort": 70000, "protocol": "TCP"}]),
                 Cause("FieldValueInvalid", "Invalid value: 70000: must be between 1 and "
                       "65535, inclusive", "spec.containers[0].ports[0].containerPort"),
                 id="bad-port"),
    pytest.param(POD, lambda o: o["spec"]["containers"][0].update(name="App"),
                 Cause("FieldValueInvalid", 'Invalid value: "App": a lowercase RFC 1123 label '
                       "must consist of lower case alphanumeric characters or '-', and must "
                       "start and end with an alphanumeric character (e.g. 'my-name',  or "
                       "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                       "spec.containers[0].name"), id="container-name"),
    pytest.param(DEPLOY, _set("spec", "template", "metadata", "labels", value={"app": "other"}),
                 Cause("FieldValueInvalid", 'Invalid value: {"app":"other"}: `selector` does '
                       "not match template `labels`", "spec.template.metadata.labels"),
                 id="selector-mismatch"),
    pytest.param(DEPLOY, lambda o: o["spec"].pop("selector"),
                 Cause("FieldValueRequired", "Required value", "spec.selector"), id="no-sel"),
    pytest.param(DEPLOY, _set("spec", "replicas", value=-1),
                 Cause("FieldValueInvalid", "Invalid value: -1: must be greater than or equal "
                       "to 0", "spec.replicas"), id="negative-replicas"),
    pytest.param(DEPLOY, _set("spec", "template", "spec", "containers", value=[]),
                 Cause("FieldValueRequired", "Required value", "spec.template.spec.containers"),
                 id="template-containers"),
    pytest.param(DEPLOY, _set("spec", "template", "spec", "restartPolicy", value="Never"),
                 Cause("FieldValueNotSupported", 'Unsupported value: "Never": supported values: '
                       '"Always"', "spec.template.spec.restartPolicy"), id="deploy-restart"),
    pytest.param(DEPLOY, _set("spec", "strategy", "rollingUpdate", value={
        "maxUnavailable": 0, "maxSurge": "0%"}),
                 Cause("FieldValueInvalid", "Invalid value: 0: may not be 0 when `maxSurge` is 0",
                       "spec.strategy.rollingUpdate.maxUnavailable"), id="rolling-zero"),
    pytest.param(JOB, _set("spec", "template", "spec", "restartPolicy", value="Always"),
                 Cause("FieldValueNotSupported", 'Unsupported value: "Always": supported '
                       'values: "OnFailure", "Never"', "spec.template.spec.restartPolicy"),
                 id="job-restart"),
    pytest.param(JOB, _set("spec", "selector", value={"matchLabels": {"x": "y"}}),
                 Cause("FieldValueInvalid", 'Invalid value: {"matchLabels":{"x":"y"}}: '
                       "`selector` not auto-generated", "spec.selector"), id="job-selector"),
    pytest.param(SVC, _set("spec", "ports", value=[]),
                 Cause("FieldValueRequired", "Required value", "spec.ports"), id="svc-ports"),
    pytest.param(SVC, _set("spec", "type", value="Magic"),
                 Cause("FieldValueNotSupported", 'Unsupported value: "Magic": supported values: '
                       '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"', "spec.type"),
                 id="svc-type"),
    pytest.param(SVC, lambda o: o["spec"]["ports"].append({"port": 443, "protocol": "TCP"}),
                 Cause("FieldValueRequired", "Required value", "spec.ports[0].name"),
                 id="svc-port-names"),
    pytest.param(SVC, _set("metadata", "name", value="1web"),
                 Cause("FieldValueInvalid", 'Invalid value: "1web": a DNS-1035 label must '
                       "consist of lower case alphanumeric characters or '-', start with an "
                       "alphabetic character, and end with an alphanumeric character (e.g. "
                       "'my-name',  or 'abc-123', regex used for validation is "
                       "'[a-z]([-a-z0-9]*[a-z0-9])?')", "metadata.name"), id="svc-name"),
    pytest.param(("", "namespaces"), _set("metadata", "name", value="a.b"),
                 Cause("FieldValueInvalid", 'Invalid value: "a.b": a lowercase RFC 1123 label '
                       "must consist of lower case alphanumeric characters or '-', and must "
                       "start and end with an alphanumeric character (e.g. 'my-name',  or "
                       "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                       "metadata.name"), id="ns-name"),
    pytest.param(("", "namespaces"), _set("metadata", "namespace", value="x"),
                 Cause("FieldValueForbidden", "Forbidden: not allowed on this type",
                       "metadata.namespace"), id="cluster-scoped-namespace"),
    pytest.param(("", "configmaps"), _set("data", value={"bad key": "v"}),
                 Cause("FieldValueInvalid", 'Invalid value: "bad key": a valid config key must '
                       "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
                       "or 'KEY_NAME',  or 'key-name', regex used for validation is "
                       "'[-._a-zA-Z0-9]+')", "data[bad key]"), id="config-key"),
    pytest.param(("", "secrets"), _set("data", value={"k": "not base64!"}),
                 Cause("FieldValueInvalid", 'Invalid value: "<secret contents redacted>": '
                       "illegal base64 data", "data[k]"), id="secret-base64"),
    pytest.param(("", "secrets"), _set("type", value="kubernetes.io/tls"),
                 Cause("FieldValueRequired", "Required value", "data[tls.crt]"), id="tls"),
    pytest.param(("", "events"), _set("involvedObject", "namespace", value="other"),
                 Cause("FieldValueInvalid", 'Invalid value: "other": does not match '
                       "event.namespace", "involvedObject.namespace"), id="event-ns"),
    pytest.param(("coordination.k8s.io", "leases"), _set("spec", "leaseDurationSeconds",
                                                         value=0),
                 Cause("FieldValueInvalid", "Invalid value: 0: must be greater than 0",
                       "spec.leaseDurationSeconds"), id="lease-duration"),
    pytest.param(("", "resourcequotas"), _set("spec", "hard", value={"cpu": "lots"}),
                 Cause("FieldValueInvalid", "Invalid value: \"lots\": quantities must match the "
                       "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                       "spec.hard[cpu]"), id="quota-quantity"),
    pytest.param(("", "limitranges"), _set("spec", "limits", 0, "type", value="Cluster"),
                 Cause("FieldValueNotSupported", 'Unsupported value: "Cluster": supported '
                       'values: "Container", "Pod", "PersistentVolumeClaim"',
                       "spec.limits[0].type"), id="limit-type"),
    pytest.param(("", "limitranges"), _set("spec", "limits", 0, "min", value={"cpu": "2"}),
                 Cause("FieldValueInvalid", 'Invalid value: "2": min value 2 is greater than '
                       "max value 1", "spec.limits[0][cpu]"), id="limit-order"),
    pytest.param((RBAC, "roles"), _set("rules", value=[{"verbs": ["get"], "resources": ["x"]}]),
                 Cause("FieldValueRequired", "Required value: resource rules must supply at "
                       "least one api group", "rules[0].apiGroups"), id="rule-groups"),
    pytest.param((RBAC, "roles"), _set("rules", value=[{"verbs": ["get"],
                                                        "nonResourceURLs": ["/x"]}]),
                 Cause("FieldValueInvalid", 'Invalid value: ["/x"]: namespaced rules cannot '
                       "apply to non-resource URLs", "rules[0].nonResourceURLs"), id="rule-url"),
    pytest.param((RBAC, "roles"), _set("metadata", "name", value="a/b"),
                 Cause("FieldValueInvalid", "Invalid value: \"a/b\": may not contain '/'",
                       "metadata.name"), id="rbac-name"),
    pytest.param((RBAC, "clusterrolebindings"), _set("roleRef", "kind", value="Role"),
                 Cause("FieldValueNotSupported", 'Unsupported value: "Role": supported values: '
                       '"ClusterRole"', "roleRef.kind"), id="crb-role-kind"),
    pytest.param((RBAC, "clusterrolebindings"), lambda o: o["subjects"][0].pop("namespace"),
                 Cause("FieldValueRequired", "Required value", "subjects[0].namespace"),
                 id="crb-sa-namespace"),
    pytest.param((RBAC, "rolebindings"), _set("subjects", 0, "kind", value="Robot"),
                 Cause("FieldValueNotSupported", 'Unsupported value: "Robot": supported values: '
                       '"ServiceAccount", "User", "Group"', "subjects[0].kind"),
                 id="subject-kind"),
])
def test_validation_causes(key: tuple[str, str], edit: Callable[[Obj], Any],
                           expected: Cause) -> None:
    assert expected in causes_of(*key, edit)


def test_causes_make_a_kubernetes_invalid_message() -> None:
    causes = causes_of(*POD, _containers([]))
    assert Invalid("Pod", "p", causes).message == (
        'Pod "p" is invalid: spec.containers: Required value')


@pytest.mark.parametrize(("namespaced", "rule", "meta", "fields"), [
    (True, "subdomain", _meta("ok"), []),
    (False, "label", _meta("ok", None), []),
    (False, "subdomain", _meta("ok"), ["metadata.namespace"]),
    (True, "path", _meta("system:node:n1"), []),
    (True, "path", _meta(".."), ["metadata.name"]),
    (True, "subdomain", _meta("x" * 254), ["metadata.name"]),
    (True, "subdomain", _meta("ok", labels={"a/b/c": "x"}), ["metadata.labels"]),
    (True, "subdomain", _meta("ok", annotations={"Example.COM/Key": "v"}), []),
    (True, "subdomain", _meta("ok", finalizers=["orphan", "foregroundDeletion"]),
     ["metadata.finalizers"]),
    (True, "subdomain", _meta("ok", ownerReferences=[
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]),
     ["metadata.ownerReferences"]),
])
def test_validate_object_meta(namespaced: bool, rule: str, meta: Obj,
                              fields: list[str]) -> None:
    causes = validate_object_meta({"metadata": meta}, namespaced=namespaced, name_rule=rule)
    assert [c.field for c in causes] == fields


# --- updates --------------------------------------------------------------------------------


def update_causes(key: tuple[str, str], edit: Callable[[Obj], Any],
                  old_edit: Callable[[Obj], Any] | None = None) -> list[Cause]:
    old = created(*key)
    if old_edit:
        old_edit(old)
    new = copy.deepcopy(old)
    edit(new)
    s = strategy_for(*key)
    s.prepare_for_update(new, old)
    return s.validate_update(new, old)


def _new_selector(obj: Obj) -> None:
    obj["spec"]["selector"] = {"matchLabels": {"app": "b"}}
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "b"}


def _image(image: str) -> Callable[[Obj], None]:
    return lambda o: o["spec"]["containers"][0].update(image=image)


RB = (RBAC, "rolebindings")


IMMUTABLE = _set("immutable", value=True)
TOLERATED = _set("spec", "tolerations", value=[{"key": "k", "operator": "Exists"}])


@pytest.mark.parametrize(("key", "edit", "expected", "old_edit"), [
    pytest.param(DEPLOY, _new_selector,
                 Cause("FieldValueInvalid", 'Invalid value: {"matchLabels":{"app":"b"}}: field '
                       "is immutable", "spec.selector"), None, id="deploy-selector"),
    pytest.param(("apps", "replicasets"), _new_selector,
                 Cause("FieldValueInvalid", 'Invalid value: {"matchLabels":{"app":"b"}}: field '
                       "is immutable", "spec.selector"), None, id="rs-selector"),
    pytest.param(("apps", "statefulsets"), _set("spec", "serviceName", value="other"),
                 Cause("FieldValueForbidden", "Forbidden: updates to statefulset spec for fields "
                       "other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
                       "'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                       "'minReadySeconds' are forbidden", "spec"), None, id="sts-spec"),
    pytest.param(RB, _set("roleRef", "name", value="admin"),
                 Cause("FieldValueInvalid", 'Invalid value: {"apiGroup":"rbac.authorization.'
                       'k8s.io","kind":"Role","name":"admin"}: cannot change roleRef',
                       "roleRef"), None, id="roleref"),
    pytest.param(POD, _set("spec", "restartPolicy", value="Never"),
                 Cause("FieldValueForbidden", f"Forbidden: {POD_UPDATE_FORBIDDEN}", "spec"),
                 None, id="pod-spec"),
    pytest.param(POD, _set("spec", "nodeName", value="node-1"),
                 Cause("FieldValueForbidden", f"Forbidden: {POD_UPDATE_FORBIDDEN}", "spec"),
                 None, id="pod-node-name"),
    pytest.param(POD, lambda o: o["spec"]["containers"].append({"name": "b", "image": "b"}),
                 Cause("FieldValueForbidden", "Forbidden: pod updates may not add or remove "
                       "containers", "spec.containers"), None, id="pod-add-container"),
    pytest.param(SVC, _set("spec", "clusterIP", value="10.96.0.99"),
                 Cause("FieldValueInvalid", 'Invalid value: "10.96.0.99": field is immutable',
                       "spec.clusterIP"), None, id="cluster-ip"),
    pytest.param(("", "configmaps"), _set("metadata", "name", value="other"),
                 Cause("FieldValueInvalid", 'Invalid value: "other": field is immutable',
                       "metadata.name"), None, id="name"),
    pytest.param(("", "configmaps"), _set("data", "app.conf", value="x=2"),
                 Cause("FieldValueForbidden", "Forbidden: field is immutable when `immutable` "
                       "is set", "data"), IMMUTABLE, id="immutable-configmap"),
    pytest.param(("", "secrets"), _set("type", value="kubernetes.io/basic-auth"),
                 Cause("FieldValueInvalid", 'Invalid value: "kubernetes.io/basic-auth": field '
                       "is immutable", "type"), None, id="secret-type"),
    pytest.param(JOB, _set("spec", "template", "spec", "restartPolicy", value="OnFailure"),
                 "spec.template", None, id="job-template"),
    pytest.param(("", "nodes"), _set("spec", "podCIDR", value="10.0.2.0/24"),
                 Cause("FieldValueForbidden", 'Forbidden: node updates may not change podCIDR '
                       'except from "" to valid', "spec.podCIDR"), None, id="pod-cidr"),
    pytest.param(POD, _set("spec", "tolerations", value=[]),
                 Cause("FieldValueForbidden", f"Forbidden: {POD_UPDATE_FORBIDDEN}", "spec"),
                 TOLERATED, id="pod-toleration-removed"),
    pytest.param(POD, _set("spec", "activeDeadlineSeconds", value=60),
                 Cause("FieldValueInvalid", "Invalid value: 60: must be less than or equal to "
                       "previous value", "spec.activeDeadlineSeconds"),
                 _set("spec", "activeDeadlineSeconds", value=30), id="pod-deadline-up"),
])
def test_update_causes(key: tuple[str, str], edit: Callable[[Obj], Any], expected: Cause | str,
                       old_edit: Callable[[Obj], Any] | None) -> None:
    causes = update_causes(key, edit, old_edit)
    if isinstance(expected, str):
        assert expected in [c.field for c in causes]
    else:
        assert expected in causes


@pytest.mark.parametrize(("key", "edit"), [
    pytest.param(POD, _image("nginx:1.26"), id="pod-image"),
    pytest.param(POD, _set("spec", "activeDeadlineSeconds", value=30), id="pod-deadline"),
    pytest.param(POD, _set("spec", "tolerations", value=[{"key": "k", "operator": "Exists"}]),
                 id="pod-toleration-added"),
    pytest.param(POD, _set("metadata", "labels", value={"a": "b"}), id="pod-labels"),
    pytest.param(DEPLOY, _set("spec", "replicas", value=4), id="deploy-scale"),
    pytest.param(DEPLOY, _set("spec", "template", "spec", "containers", 0, "image", value="x"),
                 id="deploy-image"),
    pytest.param(("apps", "statefulsets"), _set("spec", "replicas", value=3), id="sts-scale"),
    pytest.param(RB, _set("subjects", value=[{"kind": "Group", "name": "devs"}]), id="subjects"),
    pytest.param(SVC, lambda o: o["spec"].pop("clusterIP"), id="svc-ip-left-out"),
    pytest.param(("", "namespaces"), _set("spec", "finalizers", value=[]), id="ns-finalizers"),
])
def test_allowed_updates(key: tuple[str, str], edit: Callable[[Obj], Any]) -> None:
    assert update_causes(key, edit) == []


def test_namespace_finalizers_change_only_through_finalize() -> None:
    s = strategy_for("", "namespaces")
    assert isinstance(s, NamespaceStrategy)
    old = created("", "namespaces")
    new = copy.deepcopy(old)
    new["spec"]["finalizers"] = []
    s.prepare_for_update(new, old)
    assert new["spec"]["finalizers"] == ["kubernetes"]
    new = copy.deepcopy(old)
    new["spec"]["finalizers"] = []
    new["status"] = {"phase": "Gone"}
    s.prepare_for_finalize(new, old)
    assert new["spec"]["finalizers"] == [] and new["status"] == {"phase": "Active"}


def test_no_new_finalizers_while_deleting() -> None:
    causes = update_causes(("", "configmaps"), _set("metadata", "finalizers", value=["a/b"]),
                           _set("metadata", "deletionTimestamp", value="2024-01-02T00:00:00Z"))
    assert [c.field for c in causes] == ["metadata.finalizers"]


def test_service_update_keeps_allocated_node_ports() -> None:
    s = strategy_for(*SVC)
    assert isinstance(s, ServiceStrategy) and s.needs_cluster_ip
    svc = example(*SVC)
    svc["spec"].update(type="NodePort", ports=[{"name": "http", "port": 80}])
    old = created(*SVC, svc)
    assert s.node_ports_wanted(old) == [0]
    old["spec"]["ports"][0]["nodePort"] = 30080
    new = copy.deepcopy(old)
    del new["spec"]["ports"][0]["nodePort"], new["spec"]["clusterIP"], new["spec"]["clusterIPs"]
    s.prepare_for_update(new, old)
    assert new["spec"]["ports"][0]["nodePort"] == 30080
    assert new["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert s.validate_update(new, old) == []


def test_service_type_change_drops_what_the_old_type_needed() -> None:
    s = strategy_for(*SVC)
    svc = example(*SVC)
    svc["spec"].update(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    old = created(*SVC, svc)
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    s.prepare_for_update(new, old)
    assert "nodePort" not in new["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in new["spec"]
    assert s.validate_update(new, old) == []
    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="db.example.com")
    s.prepare_for_update(new, old)
    assert "clusterIP" not in new["spec"] and "ipFamilies" not in new["spec"]
    assert s.validate_update(new, old) == []


def test_statefulset_mounts_may_name_claim_templates() -> None:
    sts = example("apps", "statefulsets")
    sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}]
    assert strategy_for("apps", "statefulsets").validate(created("apps", "statefulsets", sts)) \
        == []
    deploy = example(*DEPLOY)
    deploy["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}]
    assert Cause("FieldValueNotFound", 'Not found: "data"',
                 "spec.template.spec.containers[0].volumeMounts[0].name") in \
        strategy_for(*DEPLOY).validate(created(*DEPLOY, deploy))


def test_job_selector_needs_the_uid_and_template_is_fixed() -> None:
    s = strategy_for(*JOB)
    assert isinstance(s, JobStrategy) and s.needs_uid_selector
    job = example(*JOB)
    s.prepare_for_create(job)
    assert Cause("FieldValueRequired", "Required value", "spec.selector") in s.validate(job)
    manual = example(*JOB)
    manual["spec"].update(manualSelector=True, selector={"matchLabels": {"run": "pi"}})
    manual["spec"]["template"]["metadata"]["labels"] = {"run": "pi"}
    stored = created(*JOB, manual)
    assert s.validate(stored) == []
    assert stored["spec"]["template"]["metadata"]["labels"] == {"run": "pi"}
    assert stored["spec"]["selector"] == {"matchLabels": {"run": "pi"}}


def test_pod_binding_sets_node_once() -> None:
    s = strategy_for(*POD)
    assert isinstance(s, PodStrategy)
    pod = created(*POD)
    assert s.apply_binding(pod, "node-1", now="2024-01-01T00:00:01Z") is None
    assert pod["spec"]["nodeName"] == "node-1"
    assert pod["status"]["conditions"][-1]["type"] == "PodScheduled"
    assert s.apply_binding(pod, "node-2", now="t") == 'pod p is already assigned to node "node-1"'


@pytest.mark.parametrize(("text", "value"), [
    ("500m", "0.5"), ("1Gi", str(2**30)), ("1e3", "1000"), ("2", "2"), (3, "3"), ("1.5k", "1500"),
    ("abc", None), ("1.5.5", None), ("", None), (True, None),
])
def test_quantities(text: Any, value: str | None) -> None:
    assert quantity_or_none(text) == (None if value is None else Decimal(value))
