"""Discovery entries of the custom groups: the parts :mod:`control.apiserver.app` adds to the
built-in documents (legacy ``/apis`` and ``/apis/<g>/<v>``, aggregated ``/apis``).  A group's
versions are listed best first and the best is its preferred version, as kube does.  Pure.
"""

from __future__ import annotations

from typing import Any

from control.apiserver.discovery import aggregated_entry, legacy_entries

from .resource import CustomResourceDef

__all__ = ["aggregated_items", "group_entries", "resource_lists"]


def _groups(served: list[CustomResourceDef]) -> dict[str, dict[str, list[CustomResourceDef]]]:
    out: dict[str, dict[str, list[CustomResourceDef]]] = {}
    for rd in served:  # already sorted: group, best version first
        out.setdefault(rd.group, {}).setdefault(rd.version, []).append(rd)
    return out


def group_entries(served: list[CustomResourceDef]) -> list[dict[str, Any]]:
    """APIGroup entries for ``/apis`` (legacy)."""
    out = []
    for group, versions in _groups(served).items():
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        out.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return out


def resource_lists(served: list[CustomResourceDef]) -> dict[tuple[str, str], dict[str, Any]]:
    """APIResourceList per (group, version)."""
    out = {}
    for group, versions in _groups(served).items():
        for version, rds in versions.items():
            out[(group, version)] = {
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}",
                "resources": [e for rd in rds for e in legacy_entries(rd)]}
    return out


def aggregated_items(served: list[CustomResourceDef]) -> list[dict[str, Any]]:
    """APIGroupDiscovery items for the aggregated ``/apis``."""
    items = []
    for group, versions in _groups(served).items():
        items.append({"metadata": {"name": group}, "versions": [
            {"version": v, "freshness": "Current",
             "resources": [aggregated_entry(rd) for rd in rds]}
            for v, rds in versions.items()]})
    return items
