"""RBAC: rule evaluation tables, Forbidden messages, bootstrap policy and self-reviews."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from control.apiserver.rbac import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    Attributes,
    Decision,
    RBACAuthorizer,
    ReviewSpecError,
    StaticRBACSource,
    UserInfo,
    access_review_status,
    attributes_from_request,
    bootstrap_cluster_role_bindings,
    bootstrap_cluster_roles,
    forbidden_message,
    forbidden_status,
    new_authorizer,
    rules_review_status,
)
from control.apiserver.requestinfo import parse_request_info

RBAC = "rbac.authorization.k8s.io"


def rule(
    verbs: list[str],
    groups: list[str] | None = None,
    resources: list[str] | None = None,
    names: list[str] | None = None,
    urls: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs}
    if urls is not None:
        out["nonResourceURLs"] = urls
    if groups is not None:
        out["apiGroups"] = groups
    if resources is not None:
        out["resources"] = resources
    if names is not None:
        out["resourceNames"] = names
    return out


def role(name: str, rules: list[Any], namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    kind = "Role" if namespace else "ClusterRole"
    return {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": meta, "rules": rules}


def binding(
    name: str, ref_kind: str, ref_name: str, subjects: list[tuple[str, str]], namespace: str = ""
) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    subs = []
    for kind, subject in subjects:
        entry = {"kind": kind, "name": subject}
        if kind == "ServiceAccount" and ":" in subject:
            entry["namespace"], entry["name"] = subject.split(":")
        subs.append(entry)
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": ref_kind, "name": ref_name},
        "subjects": subs,
    }


ROLES = [
    role(
        "pod-reader",
        [rule(["get", "list", "watch"], [""], ["pods"]), rule(["get"], [""], ["pods/log"])],
        namespace="team-a",
    ),
    role("ghost-free", [rule(["get"], [""], ["secrets"])], namespace="team-b"),
]
CLUSTER_ROLES = [
    *bootstrap_cluster_roles(),
    role("log-reader", [rule(["get"], [""], ["pods/log"])]),
    role("node-viewer", [rule(["get", "list", "watch"], [""], ["nodes"])]),
    role("named-config", [rule(["*"], [""], ["configmaps"], names=["app-config"])]),
    role("any-status", [rule(["update", "patch"], ["apps"], ["*/status"])]),
    role("scaler", [rule(["get", "update", "patch"], ["apps"], ["deployments/scale"])]),
    role("metrics-reader", [rule(["get"], urls=["/metrics", "/logs/*"])]),
    role("pod-creator", [rule(["create"], [""], ["pods"])]),
    role("pods-star", [rule(["get"], [""], ["pods/*"])]),
    role("all-in-apps", [rule(["*"], ["apps"], ["*"])]),
]
ROLE_BINDINGS = [
    binding("alice-reads", "Role", "pod-reader", [("User", "alice")], namespace="team-a"),
    binding("bob-logs", "ClusterRole", "log-reader", [("User", "bob")], namespace="team-b"),
    binding("dave-config", "ClusterRole", "named-config", [("User", "dave")], namespace="team-a"),
    binding("scalers", "ClusterRole", "scaler", [("Group", "scalers")], namespace="team-a"),
    binding(
        "builders",
        "ClusterRole",
        "pod-creator",
        [("ServiceAccount", "team-a:builder"), ("ServiceAccount", "deployer")],
        namespace="team-a",
    ),
    binding("frank-ghost", "Role", "ghost", [("User", "frank")], namespace="team-a"),
    binding("frank-real", "Role", "pod-reader", [("User", "frank")], namespace="team-a"),
    binding("gina-star", "ClusterRole", "pods-star", [("User", "gina")], namespace="team-a"),
    binding("wrong-ns-role", "Role", "ghost-free", [("User", "hank")], namespace="team-a"),
    binding("apps-admin", "ClusterRole", "all-in-apps", [("User", "ivan")], namespace="team-b"),
]
CLUSTER_ROLE_BINDINGS = [
    *bootstrap_cluster_role_bindings(),
    binding("carol-nodes", "ClusterRole", "node-viewer", [("User", "carol")]),
    binding("erin-status", "ClusterRole", "any-status", [("User", "erin")]),
    binding("monitors", "ClusterRole", "metrics-reader", [("Group", "monitors")]),
    binding("sa-nodes", "ClusterRole", "node-viewer", [("ServiceAccount", "kube-system:watcher")]),
    binding("sa-no-ns", "ClusterRole", "node-viewer", [("ServiceAccount", "orphan")]),
]
SOURCE = StaticRBACSource(ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)
AUTHORIZER = new_authorizer(SOURCE)


def user(name: str, *groups: str) -> UserInfo:
    return UserInfo(name, (*groups, ALL_AUTHENTICATED))


def sa(namespace: str, name: str) -> UserInfo:
    return user(
        f"system:serviceaccount:{namespace}:{name}",
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
    )


ANON = UserInfo(ANONYMOUS, (ALL_UNAUTHENTICATED,))
ADMIN = user("admin", "system:masters")


def res(
    who: UserInfo, verb: str, resource: str, ns: str = "", name: str = "", group: str = ""
) -> Attributes:
    resource, _, sub = resource.partition("/")
    return Attributes(
        who,
        verb,
        True,
        namespace=ns,
        api_group=group,
        api_version="v1",
        resource=resource,
        subresource=sub,
        name=name,
    )


def url(who: UserInfo, path: str, verb: str = "get") -> Attributes:
    return Attributes(who, verb, False, path=path)


CASES = [
    # no bindings: only the bootstrap discovery/basic-user grants
    pytest.param(res(user("eve"), "list", "pods", "default"), False, id="nobody-list-pods"),
    pytest.param(res(user("eve"), "get", "nodes", name="n1"), False, id="nobody-get-node"),
    pytest.param(
        res(user("eve"), "create", "selfsubjectaccessreviews", group="authorization.k8s.io"),
        True,
        id="nobody-ssar-basic-user",
    ),
    pytest.param(
        res(user("eve"), "create", "selfsubjectrulesreviews", group="authorization.k8s.io"),
        True,
        id="nobody-ssrr-basic-user",
    ),
    pytest.param(
        res(user("eve"), "create", "selfsubjectreviews", group="authentication.k8s.io"),
        True,
        id="nobody-whoami",
    ),
    pytest.param(url(user("eve"), "/apis/apps/v1"), True, id="nobody-discovery-apis"),
    pytest.param(url(user("eve"), "/api"), True, id="nobody-discovery-api"),
    pytest.param(url(user("eve"), "/openapi/v3/apis/apps/v1"), True, id="nobody-openapi"),
    pytest.param(url(user("eve"), "/version"), True, id="nobody-version"),
    pytest.param(url(user("eve"), "/metrics"), False, id="nobody-metrics"),
    pytest.param(url(user("eve"), "/api", verb="post"), False, id="nobody-post-api"),
    pytest.param(url(ANON, "/healthz"), True, id="anon-healthz-public-info"),
    pytest.param(url(ANON, "/version"), True, id="anon-version-public-info"),
    pytest.param(url(ANON, "/api"), False, id="anon-no-discovery"),
    pytest.param(
        res(ANON, "create", "selfsubjectaccessreviews", group="authorization.k8s.io"),
        False,
        id="anon-no-basic-user",
    ),
    # Role in team-a grants only in team-a
    pytest.param(res(user("alice"), "list", "pods", "team-a"), True, id="role-list-in-ns"),
    pytest.param(res(user("alice"), "watch", "pods", "team-a"), True, id="role-watch-in-ns"),
    pytest.param(res(user("alice"), "get", "pods", "team-a", "p"), True, id="role-get-in-ns"),
    pytest.param(res(user("alice"), "list", "pods", "team-b"), False, id="role-other-ns"),
    pytest.param(res(user("alice"), "list", "pods"), False, id="role-not-cluster-wide"),
    pytest.param(res(user("alice"), "delete", "pods", "team-a", "p"), False, id="role-wrong-verb"),
    pytest.param(
        res(user("alice"), "list", "pods", "team-a", group="apps"), False, id="role-wrong-group"
    ),
    pytest.param(res(user("alice"), "get", "pods/log", "team-a", "p"), True, id="role-subres"),
    pytest.param(
        res(user("alice"), "get", "pods/exec", "team-a", "p"), False, id="pods-not-pods-exec"
    ),
    pytest.param(
        res(user("alice"), "update", "pods/status", "team-a", "p"), False, id="pods-not-pods-status"
    ),
    # RoleBinding to a ClusterRole grants in the binding's namespace only
    pytest.param(res(user("bob"), "get", "pods/log", "team-b", "p"), True, id="rb-clusterrole"),
    pytest.param(
        res(user("bob"), "get", "pods/log", "team-a", "p"), False, id="rb-clusterrole-other-ns"
    ),
    pytest.param(res(user("bob"), "get", "pods", "team-b", "p"), False, id="pods-log-not-pods"),
    pytest.param(
        res(user("ivan"), "delete", "deployments", "team-b", "d", group="apps"),
        True,
        id="rb-clusterrole-wildcards",
    ),
    pytest.param(
        res(user("ivan"), "list", "deployments", group="apps"),
        False,
        id="rb-clusterrole-not-cluster-scope",
    ),
    # ClusterRoleBinding grants everywhere
    pytest.param(res(user("carol"), "list", "nodes"), True, id="crb-cluster-scoped"),
    pytest.param(res(user("carol"), "get", "nodes", name="n1"), True, id="crb-get"),
    pytest.param(res(user("carol"), "patch", "nodes", name="n1"), False, id="crb-wrong-verb"),
    pytest.param(
        res(user("carol"), "update", "nodes/status", name="n1"), False, id="crb-no-subresource"
    ),
    # resourceNames: get/update/delete by name, never create or an unnamed list
    pytest.param(
        res(user("dave"), "get", "configmaps", "team-a", "app-config"), True, id="names-get-listed"
    ),
    pytest.param(
        res(user("dave"), "update", "configmaps", "team-a", "app-config"),
        True,
        id="names-update-listed",
    ),
    pytest.param(
        res(user("dave"), "get", "configmaps", "team-a", "other"), False, id="names-get-unlisted"
    ),
    pytest.param(res(user("dave"), "list", "configmaps", "team-a"), False, id="names-list"),
    pytest.param(
        res(user("dave"), "watch", "configmaps", "team-a", "app-config"),
        True,
        id="names-watch-with-field-selector",
    ),
    pytest.param(res(user("dave"), "create", "configmaps", "team-a"), False, id="names-create"),
    # */subresource
    pytest.param(
        res(user("erin"), "update", "deployments/status", "x", "d", group="apps"),
        True,
        id="star-sub-deployments",
    ),
    pytest.param(
        res(user("erin"), "patch", "replicasets/status", group="apps", name="r"),
        True,
        id="star-sub-cluster",
    ),
    pytest.param(
        res(user("erin"), "update", "deployments", "x", "d", group="apps"),
        False,
        id="star-sub-not-main",
    ),
    pytest.param(
        res(user("erin"), "update", "deployments/scale", "x", "d", group="apps"),
        False,
        id="star-sub-other-sub",
    ),
    pytest.param(
        res(user("erin"), "update", "pods/status", "x", "p"), False, id="star-sub-other-group"
    ),
    pytest.param(
        res(user("gina"), "get", "pods/log", "team-a", "p"), False, id="res-slash-star-not-wildcard"
    ),
    # group subjects
    pytest.param(
        res(user("grace", "scalers"), "patch", "deployments/scale", "team-a", "w", group="apps"),
        True,
        id="group-subject",
    ),
    pytest.param(
        res(user("grace", "scalers"), "patch", "deployments", "team-a", "w", group="apps"),
        False,
        id="group-subject-scale-only",
    ),
    pytest.param(
        res(user("scalers"), "patch", "deployments/scale", "team-a", "w", group="apps"),
        False,
        id="group-name-is-not-user",
    ),
    # nonResourceURLs
    pytest.param(url(user("mon", "monitors"), "/metrics"), True, id="url-exact"),
    pytest.param(url(user("mon", "monitors"), "/metrics/extra"), False, id="url-exact-only"),
    pytest.param(url(user("mon", "monitors"), "/logs/kube.log"), True, id="url-prefix"),
    pytest.param(url(user("mon", "monitors"), "/logs"), False, id="url-prefix-needs-slash"),
    pytest.param(url(user("mon", "monitors"), "/metrics", verb="post"), False, id="url-verb"),
    # service accounts
    pytest.param(
        res(sa("team-a", "builder"), "create", "pods", "team-a"), True, id="sa-explicit-ns"
    ),
    pytest.param(
        res(sa("team-a", "deployer"), "create", "pods", "team-a"), True, id="sa-binding-ns"
    ),
    pytest.param(res(sa("team-b", "builder"), "create", "pods", "team-a"), False, id="sa-other-ns"),
    pytest.param(res(user("builder"), "create", "pods", "team-a"), False, id="sa-name-not-user"),
    pytest.param(res(sa("kube-system", "watcher"), "list", "nodes"), True, id="sa-crb"),
    pytest.param(res(sa("default", "orphan"), "list", "nodes"), False, id="sa-crb-no-namespace"),
    # a RoleBinding may only reference a Role in its own namespace
    pytest.param(res(user("hank"), "get", "secrets", "team-a", "s"), False, id="role-other-ns-ref"),
    pytest.param(res(user("hank"), "get", "secrets", "team-b", "s"), False, id="rb-is-ns-scoped"),
    # one broken binding does not hide a working one
    pytest.param(res(user("frank"), "list", "pods", "team-a"), True, id="broken-and-good"),
    # system:masters bypasses RBAC entirely
    pytest.param(res(ADMIN, "delete", "nodes", name="n1"), True, id="masters-resource"),
    pytest.param(res(ADMIN, "escalate", "clusterroles", group=RBAC), True, id="masters-any-verb"),
    pytest.param(url(ADMIN, "/anything"), True, id="masters-url"),
    pytest.param(res(user("system:masters"), "list", "pods", "x"), False, id="masters-user-name"),
]


@pytest.mark.parametrize(("attrs", "allowed"), CASES)
def test_authorize_table(attrs: Attributes, allowed: bool) -> None:
    assert AUTHORIZER.authorize(attrs).allowed is allowed


VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
RESOURCES = ["pods", "pods/log", "pods/status", "pods/exec", "services"]
NAMESPACES = ["team-a", "team-b", ""]
# alice's Role pod-reader in team-a: get/list/watch pods and get pods/log, nowhere else
ALICE_ALLOWED = {(v, "pods", "team-a") for v in ("get", "list", "watch")} | {
    ("get", "pods/log", "team-a")
}


@pytest.mark.parametrize(
    ("verb", "resource", "namespace"),
    [
        pytest.param(v, r, n, id=f"{v}-{r.replace('/', '.')}-{n or 'cluster'}")
        for v, r, n in itertools.product(VERBS, RESOURCES, NAMESPACES)
    ],
)
def test_role_grid(verb: str, resource: str, namespace: str) -> None:
    name = "" if verb in ("list", "watch", "create", "deletecollection") else "p"
    decision = AUTHORIZER.authorize(res(user("alice"), verb, resource, namespace, name))
    assert decision.allowed is ((verb, resource, namespace) in ALICE_ALLOWED)


@pytest.mark.parametrize(
    ("method", "path", "query", "who", "message"),
    [
        pytest.param(
            "GET",
            "/api/v1/namespaces/default/pods",
            {"limit": ["500"]},
            "alice",
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
            'in the namespace "default"',
            id="list-namespaced",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/default/pods/x/log",
            {},
            "alice",
            'pods "x" is forbidden: User "alice" cannot get resource "pods/log" in API '
            'group "" in the namespace "default"',
            id="subresource",
        ),
        pytest.param(
            "GET",
            "/api/v1/nodes",
            {},
            "alice",
            'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" '
            "at the cluster scope",
            id="cluster-scoped",
        ),
        pytest.param(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            {},
            "alice",
            'deployments.apps "web" is forbidden: User "alice" cannot patch resource '
            '"deployments/scale" in API group "apps" in the namespace "default"',
            id="group-qualified",
        ),
        pytest.param(
            "GET",
            "/apis/apps/v1/deployments",
            {"watch": ["true"]},
            "alice",
            'deployments.apps is forbidden: User "alice" cannot watch resource '
            '"deployments" in API group "apps" at the cluster scope',
            id="watch-all",
        ),
        pytest.param(
            "GET",
            "/apis/apps/v1/namespaces/d/deployments",
            {"fieldSelector": ["metadata.name=web"], "watch": ["1"]},
            "alice",
            'deployments.apps "web" is forbidden: User "alice" cannot watch resource '
            '"deployments" in API group "apps" in the namespace "d"',
            id="watch-by-name",
        ),
        pytest.param(
            "DELETE",
            "/api/v1/namespaces/default/configmaps",
            {},
            "alice",
            'configmaps is forbidden: User "alice" cannot deletecollection resource '
            '"configmaps" in API group "" in the namespace "default"',
            id="deletecollection",
        ),
        pytest.param(
            "POST",
            "/metrics",
            {},
            "alice",
            'forbidden: User "alice" cannot post path "/metrics"',
            id="non-resource",
        ),
        pytest.param(
            "GET",
            "/api",
            {},
            ANONYMOUS,
            'forbidden: User "system:anonymous" cannot get path "/api"',
            id="anonymous",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/team-a/secrets",
            {},
            "frank",
            'secrets is forbidden: User "frank" cannot list resource "secrets" in API '
            'group "" in the namespace "team-a": RBAC: role.rbac.authorization.k8s.io '
            '"ghost" not found',
            id="with-rbac-reason",
        ),
        pytest.param(
            "GET",
            "/<b>&",
            {},
            "alice",
            'forbidden: User "alice" cannot get path "/&lt;b&gt;&amp;"',
            id="sanitized",
        ),
    ],
)
def test_forbidden_message(
    method: str, path: str, query: dict[str, list[str]], who: str, message: str
) -> None:
    principal = ANON if who == ANONYMOUS else user(who)
    attrs = attributes_from_request(principal, parse_request_info(method, path, query))
    decision = AUTHORIZER.authorize(attrs)
    assert not decision.allowed
    assert forbidden_message(attrs, decision.reason) == message


def test_forbidden_status_body() -> None:
    attrs = res(user("alice"), "get", "pods/log", "default", "x")
    assert forbidden_status(attrs) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": forbidden_message(attrs),
        "reason": "Forbidden",
        "details": {"name": "x", "kind": "pods"},
        "code": 403,
    }
    assert forbidden_status(url(user("alice"), "/x"))["details"] == {}


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        pytest.param(
            res(user("alice"), "list", "pods", "team-a"),
            'RBAC: allowed by RoleBinding "alice-reads/team-a" of Role "pod-reader" to '
            'User "alice"',
            id="rolebinding",
        ),
        pytest.param(
            res(user("carol"), "list", "nodes"),
            'RBAC: allowed by ClusterRoleBinding "carol-nodes" of ClusterRole '
            '"node-viewer" to User "carol"',
            id="clusterrolebinding",
        ),
        pytest.param(
            res(sa("team-a", "deployer"), "create", "pods", "team-a"),
            'RBAC: allowed by RoleBinding "builders/team-a" of ClusterRole "pod-creator" '
            'to ServiceAccount "deployer/team-a"',
            id="serviceaccount",
        ),
        pytest.param(res(ADMIN, "list", "pods", "x"), "", id="masters-no-reason"),
    ],
)
def test_allow_reasons(attrs: Attributes, reason: str) -> None:
    assert AUTHORIZER.authorize(attrs) == Decision(allowed=True, reason=reason)


def test_multiple_missing_roles_aggregate() -> None:
    source = StaticRBACSource(
        role_bindings=[
            binding("a", "Role", "r1", [("User", "u")], namespace="n"),
            binding("b", "ClusterRole", "c1", [("User", "u")], namespace="n"),
            binding("c", "Role", "r1", [("User", "u")], namespace="n"),
            binding("d", "Other", "x", [("User", "someone-else")], namespace="n"),
        ]
    )
    decision = RBACAuthorizer(source).authorize(res(user("u"), "get", "pods", "n", "p"))
    assert decision == Decision(
        allowed=False,
        reason=(
            'RBAC: [role.rbac.authorization.k8s.io "r1" not found, '
            'clusterrole.rbac.authorization.k8s.io "c1" not found]'
        ),
    )


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({"metadata": {"name": "x"}}, id="no-roleref-no-subjects"),
        pytest.param(
            {"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": "alice"},
            id="subjects-not-list",
        ),
        pytest.param(
            {"roleRef": None, "subjects": [{"kind": "User", "name": "alice"}]}, id="roleref-null"
        ),
        pytest.param(
            {
                "roleRef": {"kind": "ClusterRole", "name": "weird"},
                "subjects": [{"kind": "User", "name": "alice"}, "junk"],
            },
            id="junk-subject",
        ),
    ],
)
def test_malformed_objects_grant_nothing(broken: dict[str, Any]) -> None:
    weird = role("weird", [{"verbs": "*", "apiGroups": ["*"], "resources": ["*"]}, "junk"])
    source = StaticRBACSource(cluster_role_list=[weird], cluster_role_binding_list=[broken])
    assert not RBACAuthorizer(source).authorize(res(user("alice"), "get", "pods", "n", "p")).allowed


# --- bootstrap policy ---------------------------------------------------------------------


def test_bootstrap_bindings_resolve() -> None:
    names = {r["metadata"]["name"] for r in bootstrap_cluster_roles()}
    for b in bootstrap_cluster_role_bindings():
        assert b["roleRef"]["name"] in names
        assert b["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "rbac-defaults"}
    subjects = {b["metadata"]["name"]: b["subjects"] for b in bootstrap_cluster_role_bindings()}
    assert subjects["cluster-admin"] == [
        {"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}
    ]
    assert {s["name"] for s in subjects["system:public-info-viewer"]} == {
        ALL_AUTHENTICATED,
        ALL_UNAUTHENTICATED,
    }


def test_bootstrap_returns_fresh_copies() -> None:
    first = bootstrap_cluster_roles()
    first[0]["rules"][0]["verbs"].append("mutated")
    assert "mutated" not in bootstrap_cluster_roles()[0]["rules"][0]["verbs"]


NODE = user("system:node:n1", "system:nodes")
SCHED = user("system:kube-scheduler")
KCM = user("system:kube-controller-manager")
VIEWER = user("vera")
EDITOR = user("ed")
NS_ADMIN = user("ada")
TEAM = StaticRBACSource(
    cluster_role_list=bootstrap_cluster_roles(),
    cluster_role_binding_list=bootstrap_cluster_role_bindings(),
    role_bindings=[
        binding("v", "ClusterRole", "view", [("User", "vera")], namespace="t"),
        binding("e", "ClusterRole", "edit", [("User", "ed")], namespace="t"),
        binding("a", "ClusterRole", "admin", [("User", "ada")], namespace="t"),
    ],
)


@pytest.mark.parametrize(
    ("attrs", "allowed"),
    [
        pytest.param(res(NODE, "create", "nodes"), True, id="node-register"),
        pytest.param(res(NODE, "patch", "nodes/status", name="n1"), True, id="node-status"),
        pytest.param(
            res(NODE, "update", "leases", "kube-node-lease", "n1", group="coordination.k8s.io"),
            True,
            id="node-lease",
        ),
        pytest.param(res(NODE, "watch", "pods"), True, id="node-watch-pods"),
        pytest.param(res(NODE, "patch", "pods/status", "d", "p"), True, id="node-pod-status"),
        pytest.param(res(NODE, "list", "endpoints"), True, id="node-proxy-endpoints"),
        pytest.param(res(NODE, "get", "secrets", "d", "s"), True, id="node-secret"),
        pytest.param(res(NODE, "update", "pods", "d", "p"), False, id="node-no-pod-spec-update"),
        pytest.param(
            res(NODE, "create", "deployments", "d", group="apps"), False, id="node-no-deploy"
        ),
        pytest.param(res(SCHED, "create", "pods/binding", "d", "p"), True, id="sched-bind"),
        pytest.param(res(SCHED, "watch", "nodes"), True, id="sched-watch-nodes"),
        pytest.param(
            res(
                SCHED,
                "update",
                "leases",
                "kube-system",
                "kube-scheduler",
                group="coordination.k8s.io",
            ),
            True,
            id="sched-own-lease",
        ),
        pytest.param(
            res(SCHED, "update", "leases", "kube-system", "other", group="coordination.k8s.io"),
            False,
            id="sched-other-lease",
        ),
        pytest.param(res(SCHED, "delete", "nodes", name="n1"), False, id="sched-no-node-delete"),
        pytest.param(
            res(KCM, "create", "replicasets", "d", group="apps"), True, id="kcm-create-rs"
        ),
        pytest.param(
            res(KCM, "update", "deployments/status", "d", "x", group="apps"),
            True,
            id="kcm-deploy-status",
        ),
        pytest.param(
            res(KCM, "delete", "widgets", "d", "x", group="example.com"), True, id="kcm-gc"
        ),
        pytest.param(res(KCM, "deletecollection", "configmaps", "d"), True, id="kcm-ns-cleanup"),
        pytest.param(
            res(KCM, "create", "clusterroles", group=RBAC), False, id="kcm-no-rbac-create"
        ),
        pytest.param(res(VIEWER, "list", "deployments", "t", group="apps"), True, id="view-list"),
        pytest.param(res(VIEWER, "get", "pods/log", "t", "p"), True, id="view-logs"),
        pytest.param(res(VIEWER, "get", "secrets", "t", "s"), False, id="view-no-secrets"),
        pytest.param(res(VIEWER, "list", "pods", "u"), False, id="view-other-ns"),
        pytest.param(
            res(EDITOR, "patch", "deployments/scale", "t", "w", group="apps"), True, id="edit-scale"
        ),
        pytest.param(
            res(EDITOR, "create", "rolebindings", "t", group=RBAC), False, id="edit-no-rbac"
        ),
        pytest.param(
            res(NS_ADMIN, "create", "rolebindings", "t", group=RBAC), True, id="admin-rbac"
        ),
        pytest.param(res(NS_ADMIN, "get", "namespaces", "t", "t"), True, id="admin-own-namespace"),
        pytest.param(res(NS_ADMIN, "list", "nodes"), False, id="admin-no-nodes"),
    ],
)
def test_bootstrap_roles(attrs: Attributes, allowed: bool) -> None:
    assert new_authorizer(TEAM).authorize(attrs).allowed is allowed


# --- self-reviews -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "spec", "status"),
    [
        pytest.param(
            user("alice"),
            {"resourceAttributes": {"namespace": "team-a", "verb": "list", "resource": "pods"}},
            {
                "allowed": True,
                "reason": 'RBAC: allowed by RoleBinding "alice-reads/team-a"'
                ' of Role "pod-reader" to User "alice"',
            },
            id="allowed",
        ),
        pytest.param(
            user("alice"),
            {"resourceAttributes": {"namespace": "team-a", "verb": "create", "resource": "pods"}},
            {"allowed": False},
            id="denied",
        ),
        pytest.param(
            user("alice"),
            {
                "resourceAttributes": {
                    "namespace": "team-a",
                    "verb": "get",
                    "resource": "pods",
                    "subresource": "log",
                    "name": "x",
                }
            },
            {
                "allowed": True,
                "reason": 'RBAC: allowed by RoleBinding "alice-reads/team-a"'
                ' of Role "pod-reader" to User "alice"',
            },
            id="subresource",
        ),
        pytest.param(
            user("mon", "monitors"),
            {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}},
            {
                "allowed": True,
                "reason": 'RBAC: allowed by ClusterRoleBinding "monitors" of '
                'ClusterRole "metrics-reader" to Group "monitors"',
            },
            id="non-resource",
        ),
        pytest.param(
            ADMIN,
            {"resourceAttributes": {"verb": "*", "group": "*", "resource": "*"}},
            {"allowed": True},
            id="masters",
        ),
    ],
)
def test_access_review(who: UserInfo, spec: dict[str, Any], status: dict[str, Any]) -> None:
    assert access_review_status(AUTHORIZER, who, spec) == status


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({}, "spec.resourceAttributes", id="neither"),
        pytest.param(
            {"resourceAttributes": {}, "nonResourceAttributes": {}},
            "spec.nonResourceAttributes",
            id="both",
        ),
    ],
)
def test_access_review_invalid(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ReviewSpecError) as err:
        access_review_status(AUTHORIZER, user("alice"), spec)
    assert err.value.field == field


def test_rules_review() -> None:
    status = rules_review_status(RBACAuthorizer(SOURCE), user("frank"), "team-a")
    assert {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]} in status[
        "resourceRules"
    ]
    assert {
        "verbs": ["get"],
        "nonResourceURLs": [
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/openapi",
            "/openapi/*",
            "/version",
            "/version/",
            "/healthz",
            "/livez",
            "/readyz",
        ],
    } in status["nonResourceRules"]
    assert status["incomplete"] is True
    assert status["evaluationError"] == 'role.rbac.authorization.k8s.io "ghost" not found'
    admin = rules_review_status(RBACAuthorizer(SOURCE), ADMIN, "x")
    assert admin["resourceRules"][0] == {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
    assert admin["incomplete"] is False
