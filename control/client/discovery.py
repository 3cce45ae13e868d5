"""Discovery: which resources the apiservers serve right now (client-go ``discovery``
``ServerPreferredResources``), for components that act on every kind generically — the
namespace controller empties a namespace of whatever kinds exist, custom ones included.

One GET for ``/api``, one for ``/apis``, then one per group's preferred version.  A group
version that fails to answer is reported, not fatal: the caller gets every resource that was
discovered plus the failures (kube's ``ErrGroupDiscoveryFailed``), and decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from control.api.errors import APIError

from .resources import Resource
from .rest import ApiClient

__all__ = ["Discovered", "DiscoveredResource", "all_resources", "preferred_resources"]


@dataclass(frozen=True)
class DiscoveredResource:
    resource: Resource
    verbs: frozenset[str]
    #: Whether this is its group's preferred version (every resource of
    #: :func:`preferred_resources` is).
    preferred: bool = True

    def supports(self, *verbs: str) -> bool:
        return set(verbs) <= self.verbs


@dataclass
class Discovered:
    resources: list[DiscoveredResource] = field(default_factory=list)
    #: ``group/version`` → the error its discovery document answered with.
    failed: dict[str, APIError] = field(default_factory=dict)

    def preferred(self) -> list[DiscoveredResource]:
        """The resources of each group's preferred version (client-go's
        ``ServerPreferredResources``), from either kind of discovery."""
        return [d for d in self.resources if d.preferred]

    def by_kind(self) -> dict[tuple[str, str], Resource]:
        """``(apiVersion, kind)`` → resource: how an owner reference or an object's type
        finds its REST path (client-go's RESTMapper), custom kinds included."""
        return {(d.resource.api_version, d.resource.kind): d.resource for d in self.resources}

    def failure_message(self) -> str:
        """kube's ``ErrGroupDiscoveryFailed`` text."""
        parts = [f"{gv}: {e}" for gv, e in sorted(self.failed.items())]
        return "unable to retrieve the complete list of server APIs: " + ", ".join(parts)


async def preferred_resources(client: ApiClient) -> Discovered:
    """Every top-level resource (no subresources) of every group's preferred version.
    Raises only if the root documents (``/api``, ``/apis``) cannot be read."""
    return await _discover(client, every_version=False)


async def all_resources(client: ApiClient) -> Discovered:
    """Like :func:`preferred_resources`, over every served version of every group (an owner
    reference may name any of them)."""
    return await _discover(client, every_version=True)


async def _discover(client: ApiClient, *, every_version: bool) -> Discovered:
    out = Discovered()
    core = await client.request("GET", "/api")
    paths = [("", v, f"/api/{v}", True) for v in (core.get("versions") or ())[:1]]
    groups = await client.request("GET", "/apis")
    for g in groups.get("groups") or ():
        preferred = (g.get("preferredVersion") or {}).get("groupVersion") or next(
            (v.get("groupVersion") for v in g.get("versions") or ()), "")
        wanted = [v.get("groupVersion", "") for v in g.get("versions") or ()] \
            if every_version else [preferred]
        for gv in wanted:
            if gv:
                group, _, version = gv.rpartition("/")
                paths.append((group, version, f"/apis/{gv}", gv == preferred))
    for group, version, path, is_preferred in paths:
        gv = f"{group}/{version}" if group else version
        try:
            doc = await client.request("GET", path)
        except APIError as e:
            out.failed[gv] = e
            continue
        for r in doc.get("resources") or ():
            name = str(r.get("name") or "")
            if not name or "/" in name:
                continue
            res = Resource(group, version, name, str(r.get("kind") or ""),
                           bool(r.get("namespaced")))
            out.resources.append(DiscoveredResource(res, frozenset(r.get("verbs") or ()),
                                                    is_preferred))
    return out
