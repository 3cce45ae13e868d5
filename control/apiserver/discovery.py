"""Discovery documents, built once from the catalog: legacy (``/api``, ``/apis``,
``/api/v1``, ``/apis/<g>/<v>``) and aggregated (``apidiscovery.k8s.io/v2``).

kubectl 1.37 asks for the aggregated form first and picks its parser by the reply's
Content-Type, so aggregated replies carry exactly
``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``.
"""

from __future__ import annotations

import functools
from typing import Any

from control.api.catalog import RESOURCES, ResourceDef

from .kubelet.metrics import METRICS_RESOURCES

__all__ = [
    "AGGREGATED_TYPE",
    "aggregated",
    "aggregated_entry",
    "api_group_list",
    "api_versions",
    "legacy_entries",
    "resource_list",
    "wants_aggregated",
]

AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


#: What this apiserver serves: the catalog's resources, then those computed from the node agents
#: (metrics.k8s.io, which an aggregated API server would add to kube-apiserver's discovery).
_SERVED = (*RESOURCES, *METRICS_RESOURCES)


def _group_versions() -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.group, r.version) for r in _SERVED))


def wants_aggregated(accept: str) -> bool:
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


@functools.cache
def api_group_list() -> dict[str, Any]:
    groups = []
    for group, version in _group_versions():
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _legacy(rd: ResourceDef) -> list[dict[str, Any]]:
    main: dict[str, Any] = {"name": rd.resource, "singularName": rd.singular,
                            "namespaced": rd.namespaced, "kind": rd.kind,
                            "verbs": list(rd.verbs)}
    if rd.short_names:
        main["shortNames"] = list(rd.short_names)
    if rd.categories:
        main["categories"] = list(rd.categories)
    out = [main]
    for s in rd.subresources:
        entry: dict[str, Any] = {"name": f"{rd.resource}/{s.name}", "singularName": "",
                                 "namespaced": rd.namespaced, "kind": s.kind,
                                 "verbs": list(s.verbs)}
        if s.group is not None:
            entry["group"], entry["version"] = s.group, s.version
        out.append(entry)
    return out


def legacy_entries(rd: ResourceDef) -> list[dict[str, Any]]:
    """A resource's entries in its group version's APIResourceList (itself, then each
    subresource): for resources served beside the catalog's (custom resources)."""
    return _legacy(rd)


def aggregated_entry(rd: ResourceDef) -> dict[str, Any]:
    """A resource's APIResourceDiscovery entry in the aggregated documents."""
    return _aggregated_resource(rd)


@functools.cache
def resource_list(group: str, version: str) -> dict[str, Any] | None:
    resources = [e for rd in _SERVED if (rd.group, rd.version) == (group, version)
                 for e in _legacy(rd)]
    if not resources:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def _aggregated_resource(rd: ResourceDef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": rd.resource,
        "responseKind": {"group": rd.group, "version": rd.version, "kind": rd.kind},
        "scope": "Namespaced" if rd.namespaced else "Cluster",
        "singularResource": rd.singular,
        "verbs": list(rd.verbs),
    }
    if rd.short_names:
        out["shortNames"] = list(rd.short_names)
    if rd.categories:
        out["categories"] = list(rd.categories)
    subs = []
    for s in rd.subresources:
        subs.append({"subresource": s.name,
                     "responseKind": {"group": rd.group if s.group is None else s.group,
                                      "version": rd.version if s.version is None else s.version,
                                      "kind": s.kind},
                     "verbs": list(s.verbs)})
    if subs:
        out["subresources"] = subs
    return out


@functools.cache
def aggregated(legacy_core: bool) -> dict[str, Any]:
    """``/api`` (``legacy_core``: the core group only) or ``/apis`` (every named group)."""
    items = []
    for group, version in _group_versions():
        if (group == "") != legacy_core:
            continue
        resources = [_aggregated_resource(rd) for rd in _SERVED
                     if rd.group == group and rd.version == version]
        items.append({"metadata": {"name": group},
                      "versions": [{"version": version, "freshness": "Current",
                                    "resources": resources}]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}
