"""parse_request_info: every request kubectl and the Python client send, and the edge cases."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from control.apiserver.requestinfo import QueryOptions, RequestInfo, parse_request_info

NS_PODS = "/api/v1/namespaces/default/pods"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def parse(method: str, url: str) -> RequestInfo:
    parts = urlsplit(url)
    return parse_request_info(method, parts.path, parse_qs(parts.query, keep_blank_values=True))


def nonres(verb: str = "get") -> dict[str, Any]:
    return {"is_resource_request": False, "verb": verb, "resource": "", "api_prefix": ""}


def resource(
    verb: str,
    res: str,
    *,
    ns: str = "",
    name: str = "",
    sub: str = "",
    group: str = "",
    version: str = "v1",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "is_resource_request": True,
        "verb": verb,
        "resource": res,
        "namespace": ns,
        "name": name,
        "subresource": sub,
        "api_group": group,
        "api_version": version,
        "api_prefix": "apis" if group else "api",
        **extra,
    }


CASES = [
    # non-resource paths
    pytest.param("GET", "/version?timeout=32s", nonres(), id="version"),
    pytest.param("GET", "/api", nonres(), id="api"),
    pytest.param("GET", "/apis", nonres(), id="apis"),
    pytest.param("GET", "/api/v1", nonres(), id="api-v1"),
    pytest.param("GET", "/apis/apps", nonres(), id="apis-group"),
    pytest.param("GET", "/apis/apps/v1", nonres(), id="apis-group-version"),
    pytest.param("GET", "/apis/apps/v1/", nonres(), id="apis-group-version-slash"),
    pytest.param("GET", "/openapi/v3", nonres(), id="openapi-v3"),
    pytest.param("GET", "/openapi/v3/apis/apps/v1?hash=abc", nonres(), id="openapi-v3-gv"),
    pytest.param("GET", "/openapi/v2", nonres(), id="openapi-v2"),
    pytest.param("GET", "/healthz", nonres(), id="healthz"),
    pytest.param("GET", "/livez", nonres(), id="livez"),
    pytest.param("GET", "/readyz", nonres(), id="readyz"),
    pytest.param("GET", "/metrics", nonres(), id="metrics"),
    pytest.param("GET", "/", nonres(), id="root"),
    pytest.param("POST", "/api", nonres("post"), id="post-api"),
    pytest.param("HEAD", "/healthz", nonres("head"), id="head-healthz"),
    pytest.param("GET", "/foo/bar/baz", nonres(), id="unknown-prefix"),
    # kubectl get / list, pagination, selectors
    pytest.param(
        "GET", f"{NS_PODS}?limit=500", resource("list", "pods", ns="default"), id="get-pods"
    ),
    pytest.param("GET", "/api/v1/nodes?limit=500", resource("list", "nodes"), id="get-nodes"),
    pytest.param(
        "GET",
        "/apis/apps/v1/deployments?limit=500",
        resource("list", "deployments", group="apps"),
        id="get-deploy-all-ns",
    ),
    pytest.param(
        "GET",
        f"{NS_PODS}?fieldSelector=spec.nodeName%3Dn1&labelSelector=app%3Dweb&limit=500",
        resource("list", "pods", ns="default"),
        id="get-pods-selectors",
    ),
    pytest.param(
        "GET",
        f"{NS_PODS}?continue=tok&limit=2",
        resource("list", "pods", ns="default"),
        id="chunked",
    ),
    pytest.param("GET", f"{NS_PODS}/", resource("list", "pods", ns="default"), id="trailing-slash"),
    # watch
    pytest.param(
        "GET",
        f"{NS_PODS}?resourceVersion=1012&watch=true",
        resource("watch", "pods", ns="default"),
        id="get-w",
    ),
    pytest.param(
        "GET", f"{NS_PODS}?watch=1", resource("watch", "pods", ns="default"), id="watch-1"
    ),
    pytest.param("GET", f"{NS_PODS}?watch=0", resource("list", "pods", ns="default"), id="watch-0"),
    pytest.param(
        "GET", f"{NS_PODS}?watch=False", resource("list", "pods", ns="default"), id="watch-False"
    ),
    pytest.param(
        "GET",
        f"{NS_PODS}?watch=",
        resource("watch", "pods", ns="default"),
        id="watch-empty-is-true",
    ),
    pytest.param(
        "GET",
        "/api/v1/watch/namespaces/default/pods",
        resource("watch", "pods", ns="default"),
        id="legacy-watch-path",
    ),
    pytest.param("GET", "/api/v1/watch/pods", resource("watch", "pods"), id="legacy-watch-all"),
    pytest.param(
        "GET",
        f"{DEPLOYS}?allowWatchBookmarks=true&fieldSelector=metadata.name%3Dweb"
        "&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeoutSeconds=557"
        "&watch=true",
        resource(
            "watch", "deployments", ns="default", name="web", group="apps", name_from_selector=True
        ),
        id="rollout-watch-list",
    ),
    pytest.param(
        "GET",
        f"{DEPLOYS}?fieldSelector=metadata.name%3Dweb&limit=500&resourceVersion=0",
        resource(
            "list", "deployments", ns="default", name="web", group="apps", name_from_selector=True
        ),
        id="rollout-fallback-list",
    ),
    pytest.param(
        "GET",
        f"{DEPLOYS}?fieldSelector=metadata.name%3D%3Dweb",
        resource("list", "deployments", ns="default", name="web", group="apps"),
        id="name-selector-double-equals",
    ),
    pytest.param(
        "GET",
        f"{DEPLOYS}?fieldSelector=metadata.name!%3Dweb",
        resource("list", "deployments", ns="default", group="apps"),
        id="name-selector-negated",
    ),
    pytest.param(
        "GET",
        f"{DEPLOYS}?fieldSelector=metadata.name%3Da/b",
        resource("list", "deployments", ns="default", group="apps"),
        id="name-selector-invalid-segment",
    ),
    pytest.param(
        "GET",
        f"{DEPLOYS}?fieldSelector=metadata.name",
        resource("list", "deployments", ns="default", group="apps"),
        id="name-selector-unparsable",
    ),
    pytest.param(
        "GET",
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dx"
        "%2CinvolvedObject.namespace%3Ddefault&limit=500",
        resource("list", "events", ns="default"),
        id="describe-events",
    ),
    pytest.param(
        "GET",
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1%2Cstatus.phase!%3DSucceeded&limit=500",
        resource("list", "pods"),
        id="describe-node-pods",
    ),
    pytest.param(
        "GET",
        "/api/v1/namespaces/kube-system/services?labelSelector="
        "kubernetes.io%2Fcluster-service%3Dtrue",
        resource("list", "services", ns="kube-system"),
        id="cluster-info",
    ),
    # single objects and subresources
    pytest.param(
        "GET", f"{NS_PODS}/x", resource("get", "pods", ns="default", name="x"), id="get-pod"
    ),
    pytest.param(
        "HEAD", f"{NS_PODS}/x", resource("get", "pods", ns="default", name="x"), id="head-pod"
    ),
    pytest.param(
        "GET",
        f"{NS_PODS}/x/log?container=c&follow=true&tailLines=1",
        resource("get", "pods", ns="default", name="x", sub="log"),
        id="logs",
    ),
    pytest.param(
        "GET",
        f"{DEPLOYS}/api",
        resource("get", "deployments", ns="default", name="api", group="apps"),
        id="apply-get",
    ),
    pytest.param(
        "PATCH",
        f"{DEPLOYS}/web/scale",
        resource("patch", "deployments", ns="default", name="web", sub="scale", group="apps"),
        id="scale",
    ),
    pytest.param(
        "PUT",
        "/apis/apps/v1/namespaces/d/replicasets/r/status",
        resource("update", "replicasets", ns="d", name="r", sub="status", group="apps"),
        id="rs-status",
    ),
    pytest.param(
        "POST",
        f"{NS_PODS}/x/binding",
        resource("create", "pods", ns="default", name="x", sub="binding"),
        id="binding",
    ),
    pytest.param(
        "POST",
        f"{NS_PODS}/x/eviction",
        resource("create", "pods", ns="default", name="x", sub="eviction"),
        id="eviction",
    ),
    pytest.param(
        "GET",
        f"{NS_PODS}/x/exec/extra",
        resource("get", "pods", ns="default", name="x", sub="exec"),
        id="extra-parts",
    ),
    pytest.param(
        "GET",
        "/api/v1/proxy/namespaces/d/services/s/a/b",
        resource("proxy", "services", ns="d", name="s"),
        id="legacy-proxy-no-sub",
    ),
    # writes
    pytest.param(
        "POST",
        f"{DEPLOYS}?fieldManager=kubectl-create&fieldValidation=Strict",
        resource("create", "deployments", ns="default", group="apps"),
        id="create",
    ),
    pytest.param(
        "POST",
        f"{NS_PODS}?fieldManager=kubectl-run",
        resource("create", "pods", ns="default"),
        id="run",
    ),
    pytest.param(
        "PATCH",
        f"{DEPLOYS}/api?fieldManager=kubectl&fieldValidation=Strict&force=false",
        resource("patch", "deployments", ns="default", name="api", group="apps"),
        id="server-side-apply",
    ),
    pytest.param("PATCH", "/api/v1/nodes/n1", resource("patch", "nodes", name="n1"), id="cordon"),
    pytest.param(
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
        resource("update", "leases", ns="kube-node-lease", name="n1", group="coordination.k8s.io"),
        id="lease-renew",
    ),
    pytest.param(
        "DELETE",
        f"{DEPLOYS}/web",
        resource("delete", "deployments", ns="default", name="web", group="apps"),
        id="delete",
    ),
    pytest.param(
        "DELETE",
        f"{DEPLOYS}",
        resource("deletecollection", "deployments", ns="default", group="apps"),
        id="deletecollection",
    ),
    pytest.param(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        resource("create", "selfsubjectaccessreviews", group="authorization.k8s.io"),
        id="can-i",
    ),
    pytest.param(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        resource("create", "selfsubjectreviews", group="authentication.k8s.io"),
        id="whoami",
    ),
    pytest.param(
        "OPTIONS", f"{NS_PODS}/x", resource("", "pods", ns="default", name="x"), id="unknown-method"
    ),
    # the namespace object itself, and namespace subresources
    pytest.param("GET", "/api/v1/namespaces", resource("list", "namespaces"), id="list-ns"),
    pytest.param(
        "GET",
        "/api/v1/namespaces/default",
        resource("get", "namespaces", ns="default", name="default"),
        id="get-ns",
    ),
    pytest.param(
        "DELETE",
        "/api/v1/namespaces/t",
        resource("delete", "namespaces", ns="t", name="t"),
        id="delete-ns",
    ),
    pytest.param(
        "PUT",
        "/api/v1/namespaces/t/finalize",
        resource("update", "namespaces", ns="t", name="t", sub="finalize"),
        id="ns-finalize",
    ),
    pytest.param(
        "GET",
        "/api/v1/namespaces/t/status",
        resource("get", "namespaces", ns="t", name="t", sub="status"),
        id="ns-status",
    ),
    pytest.param(
        "GET",
        "/api/v1/namespaces/t/pods/status",
        resource("get", "pods", ns="t", name="status"),
        id="pod-named-status",
    ),
    pytest.param(
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
        resource("get", "clusterroles", name="view", group="rbac.authorization.k8s.io"),
        id="cluster-scoped-group",
    ),
]


@pytest.mark.parametrize(("method", "url", "expected"), CASES)
def test_parse_request_info(method: str, url: str, expected: dict[str, Any]) -> None:
    info = parse(method, url)
    assert info.path == urlsplit(url).path
    assert {k: getattr(info, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", QueryOptions(), id="none"),
        pytest.param(
            "limit=500&continue=abc", QueryOptions(limit=500, continue_token="abc"), id="pagination"
        ),
        pytest.param(
            "allowWatchBookmarks=true&fieldSelector=metadata.name%3Dweb&resourceVersionMatch"
            "=NotOlderThan&sendInitialEvents=true&timeoutSeconds=557&watch=true",
            QueryOptions(
                watch=True,
                field_selector="metadata.name=web",
                resource_version_match="NotOlderThan",
                timeout_seconds=557,
                allow_watch_bookmarks=True,
                send_initial_events=True,
            ),
            id="watch-list",
        ),
        pytest.param(
            "sendInitialEvents=false",
            QueryOptions(send_initial_events=False),
            id="send-initial-false",
        ),
        pytest.param(
            "labelSelector=app%3Dweb&resourceVersion=0",
            QueryOptions(label_selector="app=web", resource_version="0"),
            id="rv-0",
        ),
        pytest.param(
            "fieldManager=kubectl&fieldValidation=Strict&force=true",
            QueryOptions(field_manager="kubectl", field_validation="Strict", force=True),
            id="apply-force",
        ),
        pytest.param(
            "dryRun=All&propagationPolicy=Foreground",
            QueryOptions(dry_run=("All",), propagation_policy="Foreground"),
            id="delete",
        ),
        pytest.param(
            "limit=abc&timeoutSeconds=1.5",
            QueryOptions(
                errors=(
                    'limit: strconv.ParseInt: parsing "abc": invalid syntax',
                    'timeoutSeconds: strconv.ParseInt: parsing "1.5": invalid syntax',
                )
            ),
            id="bad-ints",
        ),
        pytest.param("limit=&timeoutSeconds=", QueryOptions(), id="empty-ints"),
        pytest.param("watch=true&watch=false", QueryOptions(watch=True), id="first-value-wins"),
    ],
)
def test_query_options(query: str, expected: QueryOptions) -> None:
    info = parse_request_info("GET", NS_PODS, parse_qs(query, keep_blank_values=True))
    assert info.options == expected


def test_never_raises_on_odd_paths() -> None:
    for path in [
        "",
        "//",
        "/api//v1",
        "/apis/apps/v1/watch",
        "/api/v1/namespaces/",
        "/api/v1/watch",
        "/api/v1/proxy",
    ]:
        info = parse_request_info("GET", path, {})
        assert info.path == path


def test_single_valued_mapping_accepted() -> None:
    info = parse_request_info(
        "GET", NS_PODS, {"watch": "true", "limit": "5", "dryRun": "All", "labelSelector": "a=b"}
    )
    assert (info.verb, info.options.limit, info.options.dry_run) == ("watch", 5, ("All",))
    assert info.options.label_selector == "a=b"
