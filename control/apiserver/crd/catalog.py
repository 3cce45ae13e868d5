"""The apiserver's catalog: one lookup for built-in resources and the custom resources of every
established CRD, learned through the watch cache.

Each apiserver keeps one :class:`Catalog`.  It reads the CRDs from the watch cache when the
cache is ready (and again after the cache relists), and follows every CRD event the cache
applies, so a CRD established through any apiserver is served by all of them as soon as their
caches see it (milliseconds).  Built-ins win a name clash.  Discovery and OpenAPI documents of
the custom groups are rebuilt lazily, keyed by :attr:`Catalog.generation`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from control.api import catalog as builtin
from control.api.catalog import ResourceDef

from .resource import CustomResourceDef, custom_resources

__all__ = ["CRD_PREFIX", "Catalog", "established", "follow", "version_priority"]

CRD_PREFIX = b"/registry/apiextensions.k8s.io/customresourcedefinitions/"


def _condition(crd: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (crd.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def established(crd: dict[str, Any]) -> bool:
    c = _condition(crd, "Established")
    return c is not None and c.get("status") == "True"


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key, best first: GA before beta before alpha, higher numbers first, versions that
    are not Kubernetes-like last, alphabetically (apimachinery's
    ``CompareKubeAwareVersionStrings``)."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if m is None:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, version)


class Catalog:
    """Built-ins (:mod:`control.api.catalog`) plus the served versions of established CRDs.

    ``listeners`` are called with a CRD's name whenever the cache applies a change to it (the
    CRD controller enqueues it).  Lookups never do I/O."""

    def __init__(self) -> None:
        self._custom: dict[tuple[str, str, str], CustomResourceDef] = {}
        self._by_crd: dict[str, list[CustomResourceDef]] = {}
        self._seen: dict[str, str] = {}  # CRD name -> resourceVersion it was built from
        self.generation = 0
        self.listeners: list[Callable[[str], None]] = []

    # --- learning CRDs --------------------------------------------------------------------

    def load(self, crds: Iterable[dict[str, Any]]) -> None:
        """Replace what is known with ``crds`` (the cache's full set after a (re)list)."""
        crds = list(crds)
        names = {str((c.get("metadata") or {}).get("name", "")) for c in crds}
        for gone in [n for n in self._by_crd if n not in names]:
            self._forget(gone)
        for crd in crds:
            self.observe(crd)

    def observe(self, crd: dict[str, Any], *, deleted: bool = False) -> None:
        """One CRD's current state (or its deletion); rebuilds its entries if it changed."""
        meta = crd.get("metadata") or {}
        name = str(meta.get("name", ""))
        if deleted:
            self._forget(name)
        elif self._seen.get(name) != meta.get("resourceVersion"):
            self._forget(name)
            self._seen[name] = str(meta.get("resourceVersion", ""))
            entries = custom_resources(crd) if established(crd) else []
            self._by_crd[name] = entries
            for rd in entries:
                key = (rd.group, rd.version, rd.resource)
                if builtin.lookup(*key) is None:
                    self._custom[key] = rd
            self.generation += 1
        for listener in self.listeners:
            listener(name)

    def _forget(self, name: str) -> None:
        for rd in self._by_crd.pop(name, []):
            key = (rd.group, rd.version, rd.resource)
            if self._custom.get(key) is rd:
                del self._custom[key]
        self._seen.pop(name, None)
        self.generation += 1

    # --- lookups --------------------------------------------------------------------------

    def lookup(self, group: str, version: str, resource: str) -> ResourceDef | None:
        """The resource at ``/api[s]/<group>/<version>/.../<resource>``, built-in or custom."""
        return builtin.lookup(group, version, resource) or self._custom.get(
            (group, version, resource))

    def served_versions(self, crd_name: str) -> list[CustomResourceDef]:
        """The served versions of one CRD, best version first."""
        return sorted(self._by_crd.get(crd_name, []), key=lambda r: version_priority(r.version))

    def custom(self) -> list[CustomResourceDef]:
        """Every served custom resource, grouped by group and version (best version first)."""
        return sorted(self._custom.values(),
                      key=lambda r: (r.group, version_priority(r.version), r.resource))

    def custom_group_versions(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((r.group, r.version) for r in self.custom()))

    def documents(self) -> _Documents:
        """The discovery and OpenAPI documents of the custom groups (cached per generation)."""
        return _documents(self, self.generation)


class _Documents:
    def __init__(self, catalog: Catalog) -> None:
        from . import discovery, openapi

        served = catalog.custom()
        self.group_list = discovery.group_entries(served)
        self.resource_lists = discovery.resource_lists(served)
        self.aggregated = discovery.aggregated_items(served)
        self.openapi = openapi.documents(served)


@functools.lru_cache(maxsize=4)
def _cached(catalog_id: int, generation: int, catalog: Catalog) -> _Documents:
    return _Documents(catalog)


def _documents(catalog: Catalog, generation: int) -> _Documents:
    return _cached(id(catalog), generation, catalog)


def follow(catalog: Catalog) -> Callable[[Any], None]:
    """A watch-cache listener feeding ``catalog`` every CRD event the cache applies."""

    def listener(ev: Any) -> None:
        if ev.key.startswith(CRD_PREFIX):
            catalog.observe(ev.obj, deleted=ev.type == "DELETED")

    return listener
