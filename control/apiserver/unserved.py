"""The answer for a subresource ketch does not serve: 404 without an object name, as
kube-apiserver answers for a route it has not installed (a subresource whose feature is off),
so clients read it as "not available here" rather than "no such object" — ``kubectl debug``
then says ``ephemeral containers are disabled for this cluster``.  The message says whether
Kubernetes has the subresource (and ketch does not serve it yet) or nobody does.
"""

from __future__ import annotations

from control.api.errors import APIError

__all__ = ["KUBERNETES_SUBRESOURCES", "unserved_subresource"]

NOT_FOUND = "the server could not find the requested resource"

#: The subresources Kubernetes serves, by (group, resource).
KUBERNETES_SUBRESOURCES: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({"attach", "binding", "ephemeralcontainers", "eviction", "exec",
                             "log", "portforward", "proxy", "resize", "status"}),
    ("", "nodes"): frozenset({"proxy", "status"}),
    ("", "services"): frozenset({"proxy", "status"}),
    ("", "namespaces"): frozenset({"finalize", "status"}),
    ("", "serviceaccounts"): frozenset({"token"}),
    ("", "replicationcontrollers"): frozenset({"scale", "status"}),
    ("", "resourcequotas"): frozenset({"status"}),
    ("", "persistentvolumeclaims"): frozenset({"status"}),
    ("", "persistentvolumes"): frozenset({"status"}),
    ("apps", "deployments"): frozenset({"scale", "status"}),
    ("apps", "replicasets"): frozenset({"scale", "status"}),
    ("apps", "statefulsets"): frozenset({"scale", "status"}),
    ("apps", "daemonsets"): frozenset({"status"}),
    ("batch", "jobs"): frozenset({"status"}),
    ("batch", "cronjobs"): frozenset({"status"}),
    ("policy", "poddisruptionbudgets"): frozenset({"status"}),
    ("autoscaling", "horizontalpodautoscalers"): frozenset({"status"}),
    ("networking.k8s.io", "ingresses"): frozenset({"status"}),
    ("certificates.k8s.io", "certificatesigningrequests"): frozenset({"approval", "status"}),
    ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"status"}),
}


def unserved_subresource(group: str, resource: str, subresource: str) -> APIError:
    """The 404 for ``resource/subresource`` that this server does not serve."""
    what = f"{resource}/{subresource}"
    if subresource in KUBERNETES_SUBRESOURCES.get((group, resource), frozenset()):
        message = (f"{NOT_FOUND}: {what} is a Kubernetes subresource that ketch does not "
                   "serve yet")
    else:
        message = f"{NOT_FOUND}: {what} is not a subresource"
    return APIError(404, "NotFound", message, {"group": group, "kind": what})
