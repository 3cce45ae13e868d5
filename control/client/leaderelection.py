"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go ``tools/leaderelection``).

Every candidate runs :meth:`LeaderElector.run`.  The Lease names a holder, a duration and a
renew time; a candidate takes it when it is free (no holder: released) or stale, and the
holder renews it every ``retry_period``.  Every write of the Lease is a compare-and-swap on its
resourceVersion, so two candidates can never both take it in one round.

Staleness is judged on this process's own monotonic clock: the Lease is stale when *this*
candidate has seen it unchanged (same holder, renew time and resourceVersion) for longer than
``lease_duration`` — never by comparing the holder's renewTime with the local wall clock, so
clock skew between machines cannot hand out a lease early.

Safety (at most one active leader): a leader that has not renewed for ``renew_deadline`` stops
acting — :meth:`is_leading` turns False at once (it is also the REST client's write fence) and
the leading work is cancelled — and since ``renew_deadline < lease_duration``, that happens
before any other candidate can have seen the Lease unchanged for ``lease_duration``.  A leader
paused past its deadline (SIGSTOP) finds on waking that its monotonic clock moved on, and its
fence refuses every write before it renews anything.  Work that stops because a write hit
the shut fence (:class:`NotLeading`) before this loop noticed the lost renewal has stepped
down, not failed: the candidate campaigns again as a standby.  On a clean shutdown the leader
releases the Lease (holder cleared) so a standby takes over at once.

ketch's defaults — 8 s lease, 5 s renew deadline, 1 s retry — fail over in about 9 s after a
leader dies (Kubernetes: 15/10/2 s, about 17 s).  The 5 s deadline still rides out a store
leader failover (about 0.5 s, seconds under heavy faults) without losing leadership, and the
3 s between deadline and duration leave room for a renew in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from control.api.clock import Clock, format_time
from control.api.errors import APIError, Conflict, NotFound

from .errors import NotLeading
from .resources import LEASES
from .rest import ApiClient

__all__ = ["LeaderElector", "LeaseConfig"]

log = logging.getLogger("ketch.client.leaderelection")


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 8.0
    renew_deadline: float = 5.0
    retry_period: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")


class LeaderElector:
    """Campaigns for ``config``'s Lease with ``client``; while leading, runs ``lead()`` (a
    coroutine function) and cancels it the moment leadership is lost."""

    def __init__(self, client: ApiClient, config: LeaseConfig, *,
                 clock: Clock | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.client = client.unfenced()  # its own Lease writes are never fenced
        self.config = config
        self.clock = clock or client.clock
        self.on_change = on_change
        self.holder = ""  # who holds the Lease, as last read
        self.transitions = 0
        self._leading = False
        self._renewed_at = float("-inf")  # monotonic time of our last successful write
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = float("-inf")
        self._lease: dict[str, Any] | None = None
        # SABOTAGE (chaos proofs only: --sabotage keep-leading, refused unless
        # KETCH_ALLOW_SABOTAGE=1; see control.api.sabotage): a leader that cannot renew goes
        # on acting — its fence stays open and its work is not cancelled.
        self.keep_leading_for_sabotage = False

    # --- the fence ------------------------------------------------------------------------

    def is_leading(self) -> bool:
        """True only while this candidate holds the Lease and renewed it within the renew
        deadline (pass this as the REST client's ``fence``)."""
        if self.keep_leading_for_sabotage:  # SABOTAGE: the deadline is ignored
            return self._leading
        return self._leading and self._within_deadline()

    def _within_deadline(self) -> bool:
        return self.clock.monotonic() - self._renewed_at < self.config.renew_deadline

    # --- the loop -------------------------------------------------------------------------

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign, lead, and on losing the Lease campaign again, until cancelled (then
        release the Lease if held).  ``lead`` is cancelled when leadership is lost."""
        try:
            while True:
                await self._acquire()
                await self._lead(lead)
        finally:
            await self._release()

    async def _acquire(self) -> None:
        while not await self._try_acquire_or_renew():
            await self.clock.sleep(self.config.retry_period)
        self._set_leading(True)

    async def _lead(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        work: asyncio.Task[None] = asyncio.create_task(lead(), name=f"leading {self.config.name}")
        try:
            while not work.done():
                nap = asyncio.ensure_future(self.clock.sleep(self._until_next_renew()))
                try:
                    await asyncio.wait({work, nap}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    nap.cancel()
                if work.done():
                    break
                if not await self._renew_within_deadline():
                    if self.keep_leading_for_sabotage:  # SABOTAGE: lead on without the Lease
                        await self.clock.sleep(self.config.retry_period)
                        await self._try_acquire_or_renew()
                        continue
                    log.warning("%s: could not renew lease %s/%s within %.1fs; stepping down",
                                self.config.identity, self.config.namespace, self.config.name,
                                self.config.renew_deadline)
                    break
            failure = work.exception() if work.done() and not work.cancelled() else None
            if isinstance(failure, NotLeading):
                # The fence shut (the renew deadline passed) before this loop noticed: the
                # work stopped because leadership was lost, which is a step-down, not a
                # failure: campaign again.
                log.warning("%s: lost lease %s/%s (%s); stepping down", self.config.identity,
                            self.config.namespace, self.config.name, failure)
            elif failure is not None:
                raise failure
        finally:
            self._set_leading(False)
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, NotLeading):
                await work

    def _until_next_renew(self) -> float:
        return max(0.0, self._renewed_at + self.config.retry_period - self.clock.monotonic())

    async def _renew_within_deadline(self) -> bool:
        """Retry renewing until it works or the renew deadline has passed."""
        while self._leading and self._within_deadline():
            if await self._try_acquire_or_renew():
                return True
            await self.clock.sleep(min(self.config.retry_period / 2,
                                       max(0.0, self.config.renew_deadline -
                                           (self.clock.monotonic() - self._renewed_at))))
        return False

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        log.info("%s: %s lease %s/%s", self.config.identity,
                 "acquired" if leading else "lost", self.config.namespace, self.config.name)
        if self.on_change is not None:
            self.on_change(self.config.identity if leading else "")

    # --- one round (client-go tryAcquireOrRenew) ---------------------------------------------

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        started = self.clock.monotonic()
        now = format_time(self.clock.now(), micro=True)
        try:
            lease = await self.client.get(LEASES, cfg.name, cfg.namespace)
        except NotFound:
            lease = None
        except APIError as e:
            log.info("%s: reading lease: %s", cfg.identity, e)
            return False
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                    "spec": {"holderIdentity": cfg.identity, "acquireTime": now,
                             "renewTime": now, "leaseTransitions": 0,
                             "leaseDurationSeconds": max(1, round(cfg.lease_duration))}}
            return await self._write(body, create=True, started=started)
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        self._observe(lease, holder)
        if holder and holder != cfg.identity and \
                self.clock.monotonic() - self._observed_at < cfg.lease_duration:
            return False  # held by another, and not stale by our own clock
        new_spec = dict(spec)
        new_spec.update(holderIdentity=cfg.identity, renewTime=now,
                        leaseDurationSeconds=max(1, round(cfg.lease_duration)))
        if holder != cfg.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = {**lease, "spec": new_spec}
        return await self._write(body, create=False, started=started)

    async def _write(self, body: dict[str, Any], *, create: bool, started: float) -> bool:
        cfg = self.config
        try:
            if create:
                lease = await self.client.create(LEASES, body, cfg.namespace)
            else:
                lease = await self.client.update(LEASES, body)
        except Conflict:  # AlreadyExists too: someone else wrote first; read again next round
            return False
        except APIError as e:
            log.info("%s: writing lease: %s", cfg.identity, e)
            return False
        # The lease is ours from when we *sent* the write: count the deadline from then.
        self._renewed_at = started
        self._observe(lease, cfg.identity)
        return True

    def _observe(self, lease: dict[str, Any], holder: str) -> None:
        spec = lease.get("spec") or {}
        record = (holder, spec.get("renewTime"), (lease.get("metadata") or {}).get(
            "resourceVersion"))
        if record != self._observed:
            self._observed = record
            self._observed_at = self.clock.monotonic()
        self.holder = holder
        self.transitions = int(spec.get("leaseTransitions") or 0)
        self._lease = lease

    async def _release(self) -> None:
        """Give the Lease up (holder cleared) if we still hold it, so a standby takes over
        without waiting for it to go stale."""
        lease = self._lease
        if lease is None or self.holder != self.config.identity:
            return
        try:
            await asyncio.wait_for(self._clear_holder(lease), 2.0)
            log.info("%s: released lease %s/%s", self.config.identity, self.config.namespace,
                     self.config.name)
        except (APIError, TimeoutError) as e:
            log.info("%s: could not release lease: %s", self.config.identity, e)
        finally:
            self._set_leading(False)

    async def _clear_holder(self, lease: dict[str, Any]) -> None:
        """Write the Lease free; on a conflict read it again and free it if still ours (a
        renewal cancelled mid-flight may have been applied without its answer reaching
        ``self._lease``, leaving a stale resourceVersion)."""
        for attempt in range(2):
            now = format_time(self.clock.now(), micro=True)
            spec = {**(lease.get("spec") or {}), "holderIdentity": None,
                    "leaseDurationSeconds": 1, "renewTime": now, "acquireTime": now}
            try:
                await self.client.update(LEASES, {**lease, "spec": spec})
                return
            except Conflict:
                if attempt:
                    raise
                lease = await self.client.get(LEASES, self.config.name, self.config.namespace)
                if (lease.get("spec") or {}).get("holderIdentity") != self.config.identity:
                    return  # someone else holds it now: nothing of ours to give up
