"""The Deployment controller: roll a Deployment's pod template out through ReplicaSets it
owns (kubernetes ``pkg/controller/deployment``).

One reconcile per Deployment key, from the caches:

1. **Guard**: an empty selector is the ``SelectingAll`` warning; an invalid one, or one that
   does not select the template's labels, an ``InvalidSelector`` warning — never a retry loop.
2. **Claim** ReplicaSets through the namespace: the ones it controls that still match are
   kept, the ones that stopped matching are released, matching orphans adopted (after a fresh
   read shows the Deployment is not being deleted).
3. **New and old**: the *new* ReplicaSet is the oldest whose template equals the Deployment's
   but for ``pod-template-hash``; it gets revision ``max(old revisions) + 1`` (a rollback's
   old number goes to ``revision-history``) and the Deployment's annotations; the Deployment
   gets ``deployment.kubernetes.io/revision``.  A missing new ReplicaSet is created as
   ``NAME-<hash>`` with the hash label in its selector, template and labels; a name taken by
   another template bumps ``status.collisionCount`` and retries.
4. **Act**: a deleting Deployment only gets status; a paused one, or a changed ``replicas``
   (an active set sized for another count), is scaled proportionally; otherwise RollingUpdate
   (grow the new set within ``replicas + maxSurge``, shrink old ones keeping
   ``replicas - maxUnavailable`` available) or Recreate (old sets to 0, wait for their pods to
   go, then the new one at full size).  Old sets beyond ``revisionHistoryLimit`` are pruned
   once a rollout is complete.  Every scale is a ``ScalingReplicaSet`` event.
5. **Status** and the Available/Progressing conditions with Kubernetes' reasons; the key
   comes back for the progress deadline (``ProgressDeadlineExceeded``) on the injected clock.

Every write is guarded by the resourceVersion read, and the controller decides again only
once its caches show its own writes (:class:`~.written.WrittenVersions`), so no decision
about several ReplicaSets is made from a view older than the last one it acted on.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from control.api.errors import AlreadyExists, APIError, Forbidden, NotFound
from control.api.objects import meta as _meta
from control.api.selectors import LabelSelector
from control.client import NORMAL, WARNING
from control.client import resources as R

from . import deployment_status as S
from . import deployment_util as U
from .base import Controller, ControllerContext
from .claiming import claim
from .deployment_handlers import DeploymentHandlers, selector_of
from .deployment_rollout import (
    Scale,
    is_scaling_event,
    new_rs_target,
    old_pods_running,
    plan_old_scale_down,
    plan_scale,
    to_prune,
)
from .owners import controller_of, controller_ref
from .written import WrittenVersions

__all__ = ["DeploymentController"]

log = logging.getLogger("ketch.controllers.deployment")

Obj = dict[str, Any]
_WAIT = 1.0  # look again this soon when the caches have not caught up with our writes



def _swap(rss: list[Obj], new: Obj) -> None:
    """Replace the entry with ``new``'s uid (the result of a write) in the working list."""
    for i, rs in enumerate(rss):
        if _meta(rs).get("uid") == _meta(new).get("uid"):
            rss[i] = new


class DeploymentController(Controller, DeploymentHandlers):
    name = "deployment"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = ctx.informer(R.DEPLOYMENTS)
        self.sets = ctx.informer(R.REPLICASETS)
        self.pods = ctx.informer(R.PODS)
        self.written = WrittenVersions(ctx.clock)
        self.watch(self.deployments)
        self.sets.add_handler(on_add=self._rs_added, on_update=self._rs_updated,
                              on_delete=self._rs_deleted)
        self.pods.add_handler(on_delete=self._pod_deleted)

    def primary(self) -> Any:
        return self.deployments

    def start_term(self) -> None:
        self.written.clear()
        super().start_term()

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.deployments.cache.get(key)
        if cached is None:
            self.written.forget(key)
            return None
        if not self.written.caught_up(key):
            return _WAIT
        d = copy.deepcopy(cached)
        selector = await self._guard(key, d)
        if selector is None:
            return None
        rs_list = await self._claim(d, selector)
        if _meta(d).get("deletionTimestamp"):
            new, olds = await self._new_and_old(key, d, rs_list)
            await self._sync_status(key, d, [*olds, new])
            return None
        await self._check_paused(key, d)
        new, olds = await self._new_and_old(key, d, rs_list)
        spec = d.get("spec") or {}
        if spec.get("paused") or is_scaling_event(d, new, olds):
            await self._sync(key, d, new, olds)
            return None
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            return await self._recreate(key, d, new, olds)
        return await self._rolling(key, d, new, olds)

    async def _guard(self, key: str, d: Obj) -> LabelSelector | None:
        """The Deployment's selector, or None after a warning when it cannot be used."""
        selector = selector_of(d)
        if selector is not None and selector.empty:
            self.recorder.event(d, WARNING, "SelectingAll", "This deployment is selecting all "
                                "pods. A non-empty selector is required.")
        elif selector is None:
            self.recorder.event(d, WARNING, "InvalidSelector", "invalid selector")
        elif not selector.matches(((d.get("spec") or {}).get("template") or {}).get(
                "metadata", {}).get("labels") or {}):
            self.recorder.event(d, WARNING, "InvalidSelector",
                                "selector does not match template labels")
        else:
            return selector
        status = d.setdefault("status", {})
        if int(status.get("observedGeneration") or 0) < int(_meta(d).get("generation") or 0):
            status["observedGeneration"] = _meta(d).get("generation")
            await self._write_status(key, d)
        return None

    # --- claiming ReplicaSets ------------------------------------------------------------------

    async def _claim(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        """The ReplicaSets this Deployment controls after release and adoption."""
        async def can_adopt() -> bool:  # a fresh read: never adopt for a deleted Deployment
            try:
                fresh = await self.client.get(R.DEPLOYMENTS, _meta(d)["name"],
                                              _meta(d)["namespace"])
            except NotFound:
                return False
            return (_meta(fresh).get("uid") == _meta(d).get("uid")
                    and not _meta(fresh).get("deletionTimestamp"))

        return await claim(self.client, R.REPLICASETS, d, selector,
                           self.sets.cache.by_index("namespace", _meta(d).get("namespace", "")),
                           owner_ref=_ref(d), can_adopt=can_adopt)

    # --- the new ReplicaSet and revisions --------------------------------------------------------

    async def _new_and_old(self, key: str, d: Obj, rs_list: list[Obj]
                           ) -> tuple[Obj | None, list[Obj]]:
        """(the new ReplicaSet with its revision synced, or None; every old one)
        (``getAllReplicaSetsAndSyncRevision`` without creating)."""
        _, olds = U.find_old(d, rs_list)
        existing = U.find_new(d, rs_list)
        if existing is None:
            return None, olds
        rs = copy.deepcopy(existing)
        changed = U.set_new_rs_annotations(d, rs, U.max_revision(olds) + 1, exists=True)
        mrs = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        if changed or int((rs.get("spec") or {}).get("minReadySeconds") or 0) != mrs:
            rs["spec"]["minReadySeconds"] = mrs
            out: Obj = await self.client.update(R.REPLICASETS, rs)
            self.written.wrote(key, self.sets.cache, out)
            return out, olds
        needs = U.set_deployment_revision(d, _meta(rs).get("annotations", {}).get(U.REVISION, ""))
        if S.has_progress_deadline(d) and S.get_condition(d.get("status"), S.PROGRESSING) is None:
            S.set_condition(d.setdefault("status", {}), S.new_condition(
                S.PROGRESSING, "True", S.FOUND_NEW_RS,
                f'Found new replica set "{_meta(rs).get("name")}"', self.ctx.now()))
            needs = True
        if needs:
            await self._write_status(key, d)
        return existing, olds

    async def _create_new(self, key: str, d: Obj, olds: list[Obj]) -> Obj:
        """Create the new ReplicaSet (``getNewReplicaSet`` with createIfNotExisted)."""
        rs = U.new_replica_set(d, _ref(d))
        name, namespace = rs["metadata"]["name"], rs["metadata"]["namespace"]
        rs["spec"]["replicas"] = count = U.new_rs_new_replicas(d, [*olds, rs], rs)
        revision = U.max_revision(olds) + 1
        U.set_new_rs_annotations(d, rs, revision, exists=False)
        try:
            created: Obj = await self.client.create(R.REPLICASETS, rs, namespace)
            fresh = True
        except AlreadyExists as e:
            created, fresh = await self._collision(key, d, name, e), False
        except APIError as e:
            if isinstance(e, Forbidden) and "being terminated" in str(e):
                raise
            msg = f'Failed to create new replica set "{name}": {e}'
            if S.has_progress_deadline(d):
                S.set_condition(d.setdefault("status", {}), S.new_condition(
                    S.PROGRESSING, "False", S.FAILED_RS_CREATE, msg, self.ctx.now()))
                try:
                    await self._write_status(key, d)
                except APIError:
                    pass  # the creation error is the one to report
            self.recorder.event(d, WARNING, S.FAILED_RS_CREATE, msg)
            raise
        self.written.wrote(key, self.sets.cache, created)
        if fresh and count > 0:
            self.recorder.event(d, NORMAL, "ScalingReplicaSet",
                                f"Scaled up replica set {name} from 0 to {count}")
        needs = U.set_deployment_revision(d, str(revision))
        if fresh and S.has_progress_deadline(d):
            S.set_condition(d.setdefault("status", {}), S.new_condition(
                S.PROGRESSING, "True", S.NEW_RS_CREATED, f'Created new replica set "{name}"',
                self.ctx.now()))
            needs = True
        if needs:
            await self._write_status(key, d)
        return created

    async def _collision(self, key: str, d: Obj, name: str, err: AlreadyExists) -> Obj:
        """``name`` exists: ours with our template (a slow cache) is the new ReplicaSet;
        anything else is a hash collision — count it in the status and try again."""
        rs = self.sets.cache.get_by(_meta(d)["namespace"], name)
        if rs is None:
            rs = await self.client.get(R.REPLICASETS, name, _meta(d)["namespace"])
        ref = controller_of(rs)
        if (ref is not None and ref.get("uid") == _meta(d).get("uid")
                and U.equal_ignore_hash((d.get("spec") or {}).get("template"),
                                        (rs.get("spec") or {}).get("template"))):
            return rs
        status = d.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self._write_status(key, d)
        log.info("deployment %s: hash collision on %s; collisionCount now %d", key, name,
                 status["collisionCount"])
        raise err

    # --- acting ----------------------------------------------------------------------------------

    async def _check_paused(self, key: str, d: Obj) -> None:
        """Progressing Unknown/DeploymentPaused on pause and DeploymentResumed on resume, so a
        long pause never counts against the progress deadline."""
        if not S.has_progress_deadline(d):
            return
        cond = S.get_condition(d.get("status"), S.PROGRESSING)
        if cond is not None and cond.get("reason") == S.TIMED_OUT:
            return
        was_paused = cond is not None and cond.get("reason") == S.PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused == was_paused:
            return
        reason, msg = ((S.PAUSED, "Deployment is paused") if paused
                       else (S.RESUMED, "Deployment is resumed"))
        S.set_condition(d.setdefault("status", {}), S.new_condition(
            S.PROGRESSING, "Unknown", reason, msg, self.ctx.now()))
        await self._write_status(key, d)

    async def _sync(self, key: str, d: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """Scaling while paused or when ``replicas`` changed (``sync``)."""
        work: list[Any] = [*olds, new]
        await self._apply(key, d, plan_scale(d, new, olds), work)
        if (d.get("spec") or {}).get("paused"):
            await self._prune(key, d, work[:-1])
        await self._sync_status(key, d, work)

    async def _rolling(self, key: str, d: Obj, new: Obj | None, olds: list[Obj]) -> float | None:
        if new is None:
            new = await self._create_new(key, d, olds)
        work = [*olds, new]
        if await self._apply(key, d, [Scale(new, new_rs_target(d, work, new))], work):
            return await self._sync_rollout(key, d, work)
        new, olds = work[-1], work[:-1]
        if await self._apply(key, d, plan_old_scale_down(d, work, U.active(olds), new), work):
            return await self._sync_rollout(key, d, work)
        if S.deployment_complete(d, d.get("status") or {}):
            await self._prune(key, d, work[:-1])
        return await self._sync_rollout(key, d, work)

    async def _recreate(self, key: str, d: Obj, new: Obj | None, olds: list[Obj]
                        ) -> float | None:
        work: list[Obj | None] = [*olds, new]
        if await self._apply(key, d, [Scale(rs, 0) for rs in U.active(olds)], work):
            return await self._sync_rollout(key, d, work)
        olds = [rs for rs in work[:-1] if rs is not None]
        if old_pods_running(new, olds, self._pods_of):
            return await self._sync_rollout(key, d, work)
        if new is None:
            new = work[-1] = await self._create_new(key, d, olds)
        await self._apply(key, d, [Scale(new, U.desired(d))], work)
        if S.deployment_complete(d, d.get("status") or {}):
            await self._prune(key, d, olds)
        return await self._sync_rollout(key, d, work)

    def _pods_of(self, rs: Obj) -> list[Obj]:
        uid = _meta(rs).get("uid")
        return [p for p in self.pods.cache.by_index("owner", str(uid))
                if (controller_of(p) or {}).get("uid") == uid]

    async def _apply(self, key: str, d: Obj, plan: list[Scale], work: list[Any]) -> bool:
        """Make the scale writes of ``plan`` in order, updating ``work`` (the working list of
        ReplicaSets) with each result; True if any size changed.  The first error stops."""
        want, top = U.desired(d), U.desired(d) + U.max_surge(d)
        scaled = False
        for step in plan:
            rs = next((r for r in work if r is not None and _meta(r).get("uid") == _meta(
                step.rs).get("uid")), step.rs)
            old = U.spec_replicas(rs)
            resize = old != step.replicas
            if not resize and (step.operation is None
                               or not U.replicas_annotations_need_update(rs, want, top)):
                continue
            updated = copy.deepcopy(rs)
            updated["spec"]["replicas"] = step.replicas
            U.set_replicas_annotations(updated, want, top)
            out: Obj = await self.client.update(R.REPLICASETS, updated)
            self.written.wrote(key, self.sets.cache, out)
            _swap(work, out)
            if resize:
                op = step.operation or ("up" if old < step.replicas else "down")
                op = op if op == "up" else "down"
                self.recorder.event(d, NORMAL, "ScalingReplicaSet",
                                    f"Scaled {op} replica set {_meta(out).get('name')} "
                                    f"from {old} to {step.replicas}")
                scaled = True
        return scaled

    async def _prune(self, key: str, d: Obj, olds: list[Obj]) -> None:
        """Delete old ReplicaSets beyond ``revisionHistoryLimit`` (``cleanupDeployment``);
        the delete is conditional on the version judged, so a set scaled up meanwhile stays."""
        for rs in to_prune(d, olds):
            meta = _meta(rs)
            try:
                await self.client.delete(R.REPLICASETS, meta["name"], meta["namespace"],
                                         preconditions={"uid": meta.get("uid", ""),
                                                        "resourceVersion": meta.get(
                                                            "resourceVersion", "")})
            except NotFound:
                continue

    # --- status ----------------------------------------------------------------------------------

    async def _write_status(self, key: str, d: Obj) -> None:
        """Write ``d``'s status (and annotations) guarded by its resourceVersion; ``d`` then
        carries the new version, so later writes in this reconcile do not conflict."""
        out = await self.client.update_status(R.DEPLOYMENTS, d)
        _meta(d)["resourceVersion"] = _meta(out).get("resourceVersion")
        self.written.wrote(key, self.deployments.cache, out)

    async def _sync_status(self, key: str, d: Obj, all_rss: list[Obj | None]) -> None:
        """Counts and Available only (``syncDeploymentStatus``)."""
        new = all_rss[-1] if all_rss else None
        status = S.calculate_status(all_rss, new, d, self.ctx.now())
        if status != (d.get("status") or {}):
            d["status"] = status
            await self._write_status(key, d)

    async def _sync_rollout(self, key: str, d: Obj, all_rss: list[Any]) -> float | None:
        """Counts and conditions (``syncRolloutStatus``); seconds until the progress deadline
        must be checked again."""
        now = self.clock.now()
        status = S.rollout_status(d, all_rss, all_rss[-1] if all_rss else None, now)
        if status != (d.get("status") or {}):
            d["status"] = status
            await self._write_status(key, d)
        return S.requeue_after(d, status, now)


def _ref(d: Obj) -> Obj:
    return controller_ref({**d, "apiVersion": "apps/v1", "kind": "Deployment"})
