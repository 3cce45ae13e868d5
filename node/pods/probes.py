"""Liveness, readiness and startup probes (the kubelet's ``prober`` package): one probing
task per probe of each running container instance, owned by the pod's :class:`ProbeManager`.

Per probe: the first run ``initialDelaySeconds`` after the container started, then every
``periodSeconds``, each bounded by ``timeoutSeconds`` (a hanging probe is a failure).  A result
counts only after ``successThreshold`` successes or ``failureThreshold`` failures in a row.
Until then: readiness is false, liveness true, startup not yet passed.  Liveness and readiness
wait for the startup probe to pass.  A failed liveness or startup probe marks the instance for
killing (the worker restarts it per ``restartPolicy``) and stops probing it; a passed startup
probe stops too.  Every failed run is reported (``Unhealthy`` events, as the kubelet's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import Clock

from .handlers import ActionContext, Actions

__all__ = ["ProbeManager", "ProbeState"]

log = logging.getLogger("ketch.node.probes")

_KINDS = (("startupProbe", "Startup"), ("livenessProbe", "Liveness"),
          ("readinessProbe", "Readiness"))


@dataclass
class ProbeState:
    """What the probes say about one container instance."""

    started: bool
    ready: bool
    kill: str | None = None  # why the instance must be killed (liveness/startup failure)
    kill_grace: float | None = None  # the probe's terminationGracePeriodSeconds
    started_event: asyncio.Event = field(default_factory=asyncio.Event)


class ProbeManager:
    """The probe tasks of one pod.  ``on_change`` wakes the pod worker when a result changes;
    ``on_failure(container_name, message)`` records an Unhealthy event."""

    def __init__(self, *, clock: Clock, actions: Actions, on_change: Callable[[], None],
                 on_failure: Callable[[str, str], None]) -> None:
        self.clock = clock
        self.actions = actions
        self.on_change = on_change
        self.on_failure = on_failure
        self._states: dict[str, ProbeState] = {}
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}

    def state(self, container_id: str) -> ProbeState | None:
        return self._states.get(container_id)

    def sync(self, running: Mapping[str, tuple[Mapping[str, Any], ActionContext]],
             known: Mapping[str, tuple[bool, bool]] | None = None) -> None:
        """Probe exactly the instances in ``running`` (container id -> (spec, context)): start
        probing new ones, stop probing those gone.  ``known`` (container id -> (started,
        ready)) carries what a previous agent reported of a container this one adopts, so an
        agent restart neither re-runs a passed startup probe nor flaps readiness (the
        kubelet keeps ``started`` the same way)."""
        for cid in [c for c in self._tasks if c not in running]:
            self._stop(cid)
        for cid, (spec, ctx) in running.items():
            if cid in self._tasks:
                continue
            was_started, was_ready = (known or {}).get(cid, (False, False))
            state = ProbeState(started=spec.get("startupProbe") is None or was_started,
                               ready=spec.get("readinessProbe") is None or was_ready)
            if state.started:
                state.started_event.set()
            self._states[cid] = state
            self._tasks[cid] = [
                asyncio.get_running_loop().create_task(
                    self._probe(kind, title, spec[kind], ctx, state))
                for kind, title in _KINDS if spec.get(kind) is not None
                and not (kind == "startupProbe" and state.started)]
            for task in self._tasks[cid]:
                task.add_done_callback(_log_crash)

    def _stop(self, cid: str) -> None:
        for task in self._tasks.pop(cid, []):
            task.cancel()
        self._states.pop(cid, None)

    async def close(self) -> None:
        tasks = [t for ts in self._tasks.values() for t in ts]
        for cid in list(self._tasks):
            self._stop(cid)
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _probe(self, kind: str, title: str, probe: Mapping[str, Any], ctx: ActionContext,
                     state: ProbeState) -> None:
        period = max(float(probe.get("periodSeconds") or 10), 1.0)
        timeout = max(float(probe.get("timeoutSeconds") or 1), 1.0)
        success_needed = max(int(probe.get("successThreshold") or 1), 1)
        failure_needed = max(int(probe.get("failureThreshold") or 3), 1)
        if kind != "startupProbe":
            await state.started_event.wait()
        await self.clock.sleep(float(probe.get("initialDelaySeconds") or 0))
        last: bool | None = None
        run = 0
        while True:
            result = await self.actions.run(probe, ctx, timeout)
            run = run + 1 if result.ok == last else 1
            last = result.ok
            if not result.ok:
                self.on_failure(ctx.container.get("name", ""),
                                f"{title} probe failed: {result.message}".rstrip())
            if result.ok and run >= success_needed:
                if self._succeeded(kind, state):
                    return
            elif not result.ok and run >= failure_needed and self._failed(kind, state, probe):
                return
            await self.clock.sleep(period)

    def _succeeded(self, kind: str, state: ProbeState) -> bool:
        """Record a success; True when this probe is finished."""
        if kind == "startupProbe":
            state.started = True
            state.started_event.set()
            self.on_change()
            return True
        if kind == "readinessProbe" and not state.ready:
            state.ready = True
            self.on_change()
        return False

    def _failed(self, kind: str, state: ProbeState, probe: Mapping[str, Any]) -> bool:
        if kind == "readinessProbe":
            if state.ready:
                state.ready = False
                self.on_change()
            return False
        what = "liveness" if kind == "livenessProbe" else "startup"
        state.kill = f"failed {what} probe, will be restarted"
        grace = probe.get("terminationGracePeriodSeconds")
        state.kill_grace = float(grace) if grace is not None else None
        state.ready = False
        self.on_change()
        return True


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a probe task failed", exc_info=task.exception())
