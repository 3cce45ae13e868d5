"""One sync of a StatefulSet: revisions, then pods in ordinal order, then status and history
(kubernetes ``pkg/controller/statefulset/stateful_set_control.go`` and
``stateful_pod_control.go``).

* **Revisions**: the update revision is the ControllerRevision of the current template (found
  among the existing ones — a rollback renumbers an old one to the top — or created, counting
  name collisions); the current revision is ``status.currentRevision`` (the update revision
  on the first sync).
* **Replicas** ``start .. start+replicas-1``: a missing pod is created from the current
  revision below the partition and the update revision at or above it; a Failed or
  Succeeded pod is deleted, and recreated only once it is gone.  With ``OrderedReady``
  (monotonic) each step waits: one creation per sync, and pod ``i+1`` only once pod ``i`` is
  Running, Ready and available for ``minReadySeconds``; ``Parallel`` does them all at once.
* **Condemned** pods (ordinals out of range) are deleted from the highest ordinal down; with
  ``OrderedReady`` one at a time, and only while every other pod is healthy.
* **Rolling update**: from the highest ordinal down to the partition, the first pod not at
  the update revision is deleted (it comes back at the update revision), one per sync, after
  the pods above it are healthy again.  ``OnDelete`` leaves pods alone.

A pod name is never created while a pod of that name exists, terminating or not: the pod
is taken from the claimed pods, and the apiserver refuses a second object of one name, so
two processes of one ordinal never run at once as long as nobody force-deletes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from control.api.clock import Clock
from control.api.errors import APIError, NotFound
from control.api.objects import meta as _meta
from control.client import NORMAL, WARNING, ApiClient, Recorder
from control.client import resources as R

from .history import (
    History,
    equal_revision,
    find_equal_revisions,
    new_revision,
    next_revision,
    revision_template,
    sort_revisions,
    template_patch,
)
from .statefulset_pods import (
    claim_names,
    count_status,
    identity_matches,
    in_ordinal_range,
    is_created,
    is_failed,
    is_healthy,
    is_running_and_available,
    is_running_and_ready,
    is_succeeded,
    is_terminating,
    new_pod,
    ordinal,
    pod_revision,
    replicas,
    start_ordinal,
    update_identity,
)

__all__ = ["StatefulSetControl"]

Obj = dict[str, Any]



def _name(o: Obj) -> str:
    return str(_meta(o).get("name", ""))


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


async def _run_for_all(count: int, fn: Callable[[int], Awaitable[bool]],
                       monotonic: bool) -> bool:
    """``runForAll``: in order, stopping at the first that says stop (monotonic); or in
    slow-start batches of 1, 2, 4, … (parallel), stopping after a batch with an error.
    True when the sync should end here.  Errors propagate."""
    if monotonic:
        for i in range(count):
            if await fn(i):
                return True
        return False
    done, size = 0, 1
    while done < count:
        batch = range(done, min(count, done + size))
        results = await asyncio.gather(*(fn(i) for i in batch), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        done, size = done + len(batch), size * 2
    return False


class StatefulSetControl:
    """The writes of a StatefulSet sync (pods with their events, revisions)."""

    def __init__(self, client: ApiClient, recorder: Recorder, clock: Clock) -> None:
        self.client = client
        self.recorder = recorder
        self.clock = clock
        self.history = History(client)

    # --- revisions --------------------------------------------------------------------------

    async def revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """``getStatefulSetRevisions``: (current, update, collisionCount) over ``revisions``
        sorted oldest first."""
        status = sts.get("status") or {}
        collisions = _int(status.get("collisionCount"))
        labels = (((sts.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
            "labels") or {}
        update = new_revision(sts, template_patch(sts), next_revision(revisions), collisions,
                              dict(labels))
        equal = find_equal_revisions(revisions, update)
        if equal and equal_revision(revisions[-1], equal[-1]):
            update = revisions[-1]  # the template has not changed
        elif equal:  # a rollback: the old revision becomes the newest
            update = await self.history.renumber(equal[-1], _int(update["revision"]))
        else:
            update, collisions = await self.history.create(sts, update, collisions)
        current = next((r for r in revisions if _name(r) == status.get("currentRevision")),
                       update)
        return current, update, collisions

    async def truncate_history(self, sts: Obj, pods: list[Obj], revisions: list[Obj],
                               current: Obj | None, update: Obj | None) -> None:
        """Delete the oldest revisions beyond ``revisionHistoryLimit`` that are neither the
        current nor the update revision nor run by any pod."""
        live = {pod_revision(p) for p in pods}
        live |= {_name(r) for r in (current, update) if r is not None}
        old = [r for r in revisions if _name(r) not in live]
        limit = _int((sts.get("spec") or {}).get("revisionHistoryLimit"), 10)
        for rev in old[:max(0, len(old) - limit)]:
            await self.history.delete(rev)

    # --- pods -------------------------------------------------------------------------------

    def _event(self, sts: Obj, verb: str, pod: Obj, err: Exception | None) -> None:
        if err is None:
            self.recorder.event(sts, NORMAL, f"Successful{verb.title()}",
                                f"{verb} Pod {_name(pod)} in StatefulSet {_name(sts)} successful")
        else:
            self.recorder.event(sts, WARNING, f"Failed{verb.title()}",
                                f"{verb} Pod {_name(pod)} in StatefulSet {_name(sts)} failed "
                                f"error: {err}")

    async def create_pod(self, sts: Obj, pod: Obj) -> None:
        for volume, claim in claim_names(sts, _name(pod)):
            self.recorder.event(sts, WARNING, "ClaimsNotSupported",
                                f"create Claim {claim} for Pod {_name(pod)} in StatefulSet "
                                f"{_name(sts)}: persistent volume claims are not supported; "
                                f"volume {volume} is an emptyDir")
        try:
            await self.client.create(R.PODS, pod, _meta(sts).get("namespace", ""))
        except APIError as e:
            if e.reason != "AlreadyExists":  # an old pod of this name is still there
                self._event(sts, "create", pod, e)
            raise
        self._event(sts, "create", pod, None)

    async def delete_pod(self, sts: Obj, pod: Obj) -> None:
        """Delete exactly this pod (uid precondition), gracefully: never forced."""
        meta = _meta(pod)
        try:
            await self.client.delete(R.PODS, meta["name"], meta["namespace"],
                                     preconditions={"uid": meta.get("uid", "")})
        except NotFound:
            return
        except APIError as e:
            self._event(sts, "delete", pod, e)
            raise
        self._event(sts, "delete", pod, None)

    async def update_pod(self, sts: Obj, pod: Obj) -> None:
        """Restore the pod's identity labels (guarded by its resourceVersion)."""
        fixed = {**pod, "metadata": {**_meta(pod), "labels": dict(
            _meta(pod).get("labels") or {})}}
        update_identity(sts, fixed)
        try:
            await self.client.update(R.PODS, fixed)
        except APIError as e:
            self._event(sts, "update", pod, e)
            raise
        self._event(sts, "update", pod, None)

    # --- the sync ---------------------------------------------------------------------------

    def _planned(self, sts: Obj, current: Obj, update: Obj, i: int) -> Obj:
        """``newVersionedStatefulSetPod``: below the partition, the current revision."""
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        rolling = strategy.get("rollingUpdate")
        start = start_ordinal(sts)
        below = (strategy.get("type", "RollingUpdate") == "RollingUpdate" and rolling is None
                 and i < start + _int((sts.get("status") or {}).get("currentReplicas"))) or (
            isinstance(rolling, dict) and i < start + _int(rolling.get("partition")))
        if below:
            return new_pod(sts, revision_template(current), i, _name(current))
        return new_pod(sts, revision_template(update), i, _name(update))

    async def update(self, sts: Obj, current: Obj, update: Obj, collisions: int,
                     pods: list[Obj]) -> tuple[Obj, APIError | None]:
        """``updateStatefulSet``: make this sync's writes; the status to record, and the
        error that stopped them (the status is worth recording even then)."""
        spec = sts.get("spec") or {}
        mrs = _int(spec.get("minReadySeconds"))
        now = self.clock.now()
        start = start_ordinal(sts)
        reps: list[Obj | None] = [None] * replicas(sts)
        condemned: list[Obj] = []
        for pod in pods:
            if in_ordinal_range(pod, sts):
                reps[ordinal(pod) - start] = pod
            elif ordinal(pod) >= 0:
                condemned.append(pod)
        slots = [p if p is not None else self._planned(sts, current, update, start + i)
                 for i, p in enumerate(reps)]
        condemned.sort(key=ordinal, reverse=True)
        unhealthy = [p for p in slots if not is_healthy(p)] + [
            p for p in reversed(condemned) if not is_healthy(p)]
        first_unhealthy = unhealthy[0] if unhealthy else None

        def status() -> Obj:
            counts = count_status(slots + condemned, mrs, _name(current), _name(update), now)
            return {"observedGeneration": _meta(sts).get("generation", 0), **counts,
                    "currentRevision": _name(current), "updateRevision": _name(update),
                    "collisionCount": collisions}

        if _meta(sts).get("deletionTimestamp"):
            return status(), None
        monotonic = spec.get("podManagementPolicy") != "Parallel"

        async def replica(i: int) -> bool:
            return await self._process_replica(sts, slots[i], monotonic, mrs, now)

        async def doomed(i: int) -> bool:
            return await self._process_condemned(sts, condemned[i], first_unhealthy,
                                                 monotonic, mrs, now)

        try:
            if await _run_for_all(len(slots), replica, monotonic):
                return status(), None
            if await _run_for_all(len(condemned), doomed, monotonic):
                return status(), None
        except APIError as e:
            return status(), e
        result = status()
        if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
            return result, None
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        low = _int(rolling.get("partition")) if isinstance(rolling, dict) else 0
        for target in range(len(slots) - 1, low - 1, -1):
            pod = slots[target]
            if pod_revision(pod) != _name(update) and not is_terminating(pod):
                try:
                    await self.delete_pod(sts, pod)
                except APIError as e:
                    return result, e
                result["currentReplicas"] -= 1
                return result, None
            if not is_healthy(pod):
                return result, None  # wait for it before going on down
        return result, None

    async def _process_replica(self, sts: Obj, pod: Obj, monotonic: bool, mrs: int,
                               now: dt.datetime) -> bool:
        """``processReplica``: True when the sync should stop here."""
        if is_failed(pod) or is_succeeded(pod):
            if not is_terminating(pod):
                await self.delete_pod(sts, pod)  # recreated once it is gone
            return True
        if not is_created(pod):
            await self.create_pod(sts, pod)
            return monotonic  # OrderedReady: one creation per sync
        if monotonic and (is_terminating(pod) or not is_running_and_ready(pod)
                          or not is_running_and_available(pod, mrs, now)):
            return True
        if not identity_matches(sts, pod):
            await self.update_pod(sts, pod)
        return False

    async def _process_condemned(self, sts: Obj, pod: Obj, first_unhealthy: Obj | None,
                                 monotonic: bool, mrs: int, now: dt.datetime) -> bool:
        """``processCondemned``: True when the sync should stop here."""
        if is_terminating(pod):
            return monotonic
        if monotonic and pod is not first_unhealthy and (
                not is_running_and_ready(pod) or not is_running_and_available(pod, mrs, now)):
            return True
        await self.delete_pod(sts, pod)
        return True

    async def sync(self, sts: Obj, pods: list[Obj], revisions: list[Obj]) -> Obj:
        """``UpdateStatefulSet``: revisions, pods, status; history is trimmed even when the
        pods' step fails (the error is raised afterwards).  Returns the status written."""
        revisions = sort_revisions(revisions)
        try:
            current, update, collisions = await self.revisions(sts, revisions)
        except APIError:
            await self.truncate_history(sts, pods, revisions, None, None)
            raise
        status, error = await self.update(sts, current, update, collisions, pods)
        try:
            await self.write_status(sts, status)
        finally:
            await self.truncate_history(sts, pods, revisions, current, update)
        if error is not None:
            raise error
        return status

    async def write_status(self, sts: Obj, status: Obj) -> None:
        """Complete a finished rolling update, then write the status if it changed (guarded
        by resourceVersion; on a conflict once more onto a fresh read)."""
        strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type")
        if strategy != "OnDelete" and status["updatedReplicas"] == status["replicas"] \
                and status["readyReplicas"] == status["replicas"]:
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = status["updateRevision"]
        target = sts
        for attempt in range(2):
            old = target.get("status") or {}
            if all(old.get(k) == v for k, v in status.items()):
                return
            merged = {k: v for k, v in old.items() if k == "conditions"} | status
            try:
                await self.client.update_status(R.STATEFULSETS, {**target, "status": merged})
                return
            except APIError as e:
                if attempt or e.reason != "Conflict":
                    raise
                meta = _meta(sts)
                target = await self.client.get(R.STATEFULSETS, meta["name"], meta["namespace"])
                if _meta(target).get("uid") != meta.get("uid"):
                    return
