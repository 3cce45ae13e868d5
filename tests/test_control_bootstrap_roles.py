"""The bootstrap RBAC policy for the controller-manager, the scheduler and the nodes covers
what they do with cronjobs, controllerrevisions, endpointslices, poddisruptionbudgets,
priorityclasses and pods/eviction (ketch runs every controller as one identity)."""

from __future__ import annotations

import pytest

from control.apiserver.rbac import (
    ALL_AUTHENTICATED,
    Attributes,
    StaticRBACSource,
    UserInfo,
    bootstrap_cluster_role_bindings,
    bootstrap_cluster_roles,
    new_authorizer,
)

NODE = UserInfo("system:node:n1", ("system:nodes", ALL_AUTHENTICATED))
SCHED = UserInfo("system:kube-scheduler", (ALL_AUTHENTICATED,))
KCM = UserInfo("system:kube-controller-manager", (ALL_AUTHENTICATED,))
JANE = UserInfo("jane", (ALL_AUTHENTICATED,))
POLICY = StaticRBACSource(cluster_role_list=bootstrap_cluster_roles(),
                          cluster_role_binding_list=bootstrap_cluster_role_bindings())


def can(who: UserInfo, verb: str, resource: str, group: str = "", ns: str = "default",
        name: str = "") -> bool:
    resource, _, sub = resource.partition("/")
    attrs = Attributes(who, verb, True, namespace=ns, api_group=group, api_version="v1",
                       resource=resource, subresource=sub, name=name)
    return new_authorizer(POLICY).authorize(attrs).allowed


_KCM_WORKLOADS = [("", r) for r in ("pods", "endpoints", "serviceaccounts", "events")] + [
    ("apps", r) for r in ("replicasets", "deployments", "statefulsets", "daemonsets",
                          "controllerrevisions")] + [
    ("batch", "jobs"), ("batch", "cronjobs"), ("discovery.k8s.io", "endpointslices")]


@pytest.mark.parametrize(("group", "resource"), _KCM_WORKLOADS)
@pytest.mark.parametrize("verb", ["get", "list", "watch", "create", "update", "patch",
                                  "delete"])
def test_controller_manager_runs_every_workload_controller(group: str, resource: str,
                                                           verb: str) -> None:
    assert can(KCM, verb, resource, group)


@pytest.mark.parametrize(("verb", "resource", "group", "ns"), [
    ("update", "poddisruptionbudgets/status", "policy", "default"),
    ("list", "poddisruptionbudgets", "policy", "default"),
    ("update", "cronjobs/status", "batch", "default"),
    ("update", "jobs/status", "batch", "default"),
    ("update", "pods/status", "", "default"),
    ("update", "namespaces/finalize", "", ""),
    ("update", "namespaces/status", "", ""),
    ("update", "nodes/status", "", ""),
    ("update", "resourcequotas/status", "", "default"),
    ("deletecollection", "poddisruptionbudgets", "policy", "default"),
    ("deletecollection", "cronjobs", "batch", "default"),
    ("create", "leases", "coordination.k8s.io", "kube-system"),
    ("update", "leases", "coordination.k8s.io", "kube-system"),
    ("create", "pods/eviction", "", "default"),
])
def test_controller_manager_status_and_cleanup(verb: str, resource: str, group: str,
                                               ns: str) -> None:
    assert can(KCM, verb, resource, group, ns)


@pytest.mark.parametrize(("verb", "resource", "group", "name", "allowed"), [
    ("list", "priorityclasses", "scheduling.k8s.io", "", True),
    ("watch", "priorityclasses", "scheduling.k8s.io", "", True),
    ("watch", "poddisruptionbudgets", "policy", "", True),
    ("watch", "pods", "", "", True),
    ("watch", "nodes", "", "", True),
    ("create", "pods/binding", "", "p", True),
    ("patch", "pods/status", "", "p", True),
    ("delete", "pods", "", "p", True),
    ("create", "events", "", "", True),
    ("update", "leases", "coordination.k8s.io", "kube-scheduler", True),
    ("create", "priorityclasses", "scheduling.k8s.io", "", False),
    ("update", "poddisruptionbudgets/status", "policy", "web", False),
])
def test_scheduler(verb: str, resource: str, group: str, name: str, allowed: bool) -> None:
    ns = "" if resource in ("priorityclasses", "nodes") else "kube-system"
    assert can(SCHED, verb, resource, group, ns, name) is allowed


@pytest.mark.parametrize(("verb", "resource", "group", "allowed"), [
    ("create", "pods/eviction", "", True),
    ("list", "endpointslices", "discovery.k8s.io", True),
    ("watch", "endpointslices", "discovery.k8s.io", True),
    ("create", "endpointslices", "discovery.k8s.io", False),
    ("create", "priorityclasses", "scheduling.k8s.io", False),
    ("update", "poddisruptionbudgets/status", "policy", False),
])
def test_node(verb: str, resource: str, group: str, allowed: bool) -> None:
    assert can(NODE, verb, resource, group) is allowed


def test_plain_users_get_nothing_by_default() -> None:
    assert not can(JANE, "create", "pods/eviction")
    assert not can(JANE, "list", "poddisruptionbudgets", "policy")
