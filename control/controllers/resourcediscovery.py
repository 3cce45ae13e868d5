"""What the apiservers serve beyond the built-in catalog, learned again and again through
discovery, for the controllers that act on every kind — the garbage collector and the
resource quota controller (kube-controller-manager's ``Sync(discoveryClient, 30s)``: its
``GetDeletableResources`` / ``GetQuotableResources`` and its reset REST mapper).

Built-in resources come from the static catalog and are always there; a
:class:`ResourceDiscovery` tracks the others — CustomResourceDefinitions' resources, which
appear once Established and vanish when deleted:

* :attr:`ResourceDiscovery.resources` — the *wanted* ones (a filter on verbs and scope the
  caller gives) in each group's preferred version: what a controller keeps informers for;
* :meth:`ResourceDiscovery.resolve` — ``(apiVersion, kind)`` → resource over every served
  version (an owner reference may name any of them), built-ins from the catalog.  None means
  *not known yet*, never *does not exist*: the caller retries and may :meth:`request` an
  early look.

A partial failure keeps what was known of the groups that failed (kube: "preserve existing
synced informers for resources in the failed groups"); a discovery that yields nothing at
all, or fails outright, changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from control.api.catalog import RESOURCES, lookup_kind
from control.api.clock import Clock
from control.api.errors import APIError
from control.client import ApiClient, Resource
from control.client.discovery import DiscoveredResource, all_resources

__all__ = ["BUILT_IN", "EARLY_SYNC_INTERVAL", "ResourceChange", "ResourceDiscovery"]

log = logging.getLogger("ketch.controllers.discovery")

#: Every (group, plural) of the catalog: served by every apiserver, never rediscovered.
BUILT_IN = frozenset((rd.group, rd.resource) for rd in RESOURCES)
#: An early look asked for by :meth:`ResourceDiscovery.request` waits at least this long
#: after the previous one (an owner reference to a kind that never comes must not turn into
#: a discovery storm).
EARLY_SYNC_INTERVAL = 5.0


@dataclass(frozen=True)
class ResourceChange:
    """What one discovery changed among the wanted resources (a new preferred version is
    one removed and one added)."""

    added: list[Resource] = field(default_factory=list)
    removed: list[Resource] = field(default_factory=list)
    #: Whether :meth:`ResourceDiscovery.resolve` knows different kinds now.
    kinds_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.kinds_changed)


class ResourceDiscovery:
    """One controller's view of the non-built-in resources served (see the module's
    docstring).  ``wanted`` selects the resources to report (e.g. those that can be listed,
    watched and deleted)."""

    def __init__(self, client: ApiClient, clock: Clock, *, period: float,
                 wanted: Callable[[DiscoveredResource], bool]) -> None:
        self.client = client
        self.clock = clock
        self.period = period
        self.wanted = wanted
        self.resources: dict[Resource, DiscoveredResource] = {}
        self._kinds: dict[tuple[str, str], Resource] = {}
        self._wake = asyncio.Event()
        self._last = float("-inf")
        self.syncs = 0

    def resolve(self, api_version: str, kind: str) -> Resource | None:
        """The resource of ``kind`` objects in ``api_version``; None when not (yet) known."""
        rd = lookup_kind(api_version, kind)
        if rd is not None:
            return None if rd.virtual else Resource.of(rd)
        return self._kinds.get((api_version, kind))

    def request(self) -> None:
        """Ask :meth:`run` for an early look (a kind was not known), no sooner than
        :data:`EARLY_SYNC_INTERVAL` after the last one."""
        self._wake.set()

    async def sync(self) -> ResourceChange:
        """Discover once and apply what changed; raises :class:`APIError` if the root
        documents cannot be read (nothing changed then)."""
        self._last = self.clock.monotonic()
        self._wake.clear()
        found = await all_resources(self.client)
        self.syncs += 1
        if not found.resources:
            log.info("no resources reported by discovery; keeping what was known")
            return ResourceChange()
        failed = set(found.failed)
        if failed:
            log.info("%s", found.failure_message())
        kinds = {k: r for k, r in found.by_kind().items()
                 if (r.group, r.plural) not in BUILT_IN}
        kinds.update({k: r for k, r in self._kinds.items()
                      if r.api_version in failed and k not in kinds})
        current = {d.resource: d for d in found.preferred()
                   if (d.resource.group, d.resource.plural) not in BUILT_IN and self.wanted(d)}
        current.update({r: d for r, d in self.resources.items()
                        if r.api_version in failed and not _same_resource(r, current)})
        change = ResourceChange([r for r in current if r not in self.resources],
                                [r for r in self.resources if r not in current],
                                kinds != self._kinds)
        self.resources, self._kinds = current, kinds
        if change:
            log.info("discovery: added %s, removed %s", [str(r) for r in change.added],
                     [str(r) for r in change.removed])
        return change

    async def run(self, on_sync: Callable[[ResourceChange], None]) -> None:
        """Discover every :attr:`period` seconds (sooner when :meth:`request`-ed) until
        cancelled, calling ``on_sync`` after every discovery that answered (with what it
        changed, possibly nothing).  Failures are logged and retried at the next period."""
        while True:
            await self._wait()
            try:
                change = await self.sync()
            except APIError as e:
                log.info("discovery failed: %s; retrying in %.0fs", e, self.period)
                continue
            on_sync(change)

    @contextlib.asynccontextmanager
    async def running(self, on_sync: Callable[[ResourceChange], None], *,
                      name: str) -> AsyncIterator[None]:
        """Discover once now (a failure is logged: the body runs with what is known), then
        keep :meth:`run`-ning while the body runs."""
        try:
            on_sync(await self.sync())
        except APIError as e:
            log.warning("%s: discovery failed: %s; going on with what is known", name, e)
        task = asyncio.create_task(self.run(on_sync), name=f"{name} discovery")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _wait(self) -> None:
        """Until the period since the last look has passed, or an early look was asked for
        and :data:`EARLY_SYNC_INTERVAL` has passed."""
        due = self._last + self.period
        if self.clock.monotonic() < due:
            sleeper = asyncio.ensure_future(self.clock.sleep(due - self.clock.monotonic()))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (sleeper, waker):
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        early = self._last + min(EARLY_SYNC_INTERVAL, self.period)
        if self.clock.monotonic() < early:
            await self.clock.sleep(early - self.clock.monotonic())


def _same_resource(r: Resource, current: dict[Resource, DiscoveredResource]) -> bool:
    return any((c.group, c.plural) == (r.group, r.plural) for c in current)
