"""The disruption controller: the status of every PodDisruptionBudget, which the apiserver's
``pods/eviction`` spends (kubernetes ``pkg/controller/disruption``).

One reconcile per budget key: the pods its selector matches (an empty selector matches every
pod of the namespace, a missing one none); the scales of their controllers through the owner
chain in the caches (a ReplicaSet's Deployment, a StatefulSet, a lone ReplicaSet; other kinds
through their ``scale`` subresource); then the numbers of :mod:`.pdbstatus`, written with the
``DisruptionAllowed`` condition (SufficientPods / InsufficientPods) and ``observedGeneration``
only when they changed, guarded by resourceVersion.  Entries of ``disruptedPods`` whose pods
were not deleted within 2 minutes are dropped (the budget is looked at again then), and so is a
pod's ``DisruptionTarget`` condition (set back to False) when the pod it marked was not.  When the
numbers cannot be computed (a pod whose controller is missing, an unknown kind, a bad
percentage) the budget allows no disruption, with reason SyncFailed — never a hot loop.
"""

from __future__ import annotations

import logging
from typing import Any

from control.api.catalog import lookup_kind
from control.api.errors import APIError, Conflict, NotFound
from control.api.objects import meta as _meta
from control.api.selectors import SelectorError, from_label_selector
from control.client import NORMAL, WARNING, object_key, split_key
from control.client import resources as R
from control.client.resources import Resource

from .base import Controller, ControllerContext
from .disruptiontarget import cleared, stale_wait
from .owners import controller_of
from .pdbstatus import (
    DisruptionError,
    build_disrupted,
    count_healthy,
    expected_and_desired,
    failed_status,
    with_status,
)
from .podutil import condition

__all__ = ["DisruptionController", "go_selector"]

log = logging.getLogger("ketch.controllers.disruption")

Obj = dict[str, Any]
FAILED_RETRY = 30.0
POD = "pod:"  # keys of pods whose DisruptionTarget condition may go stale



def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def go_selector(sel: Obj | None) -> str:
    """A label selector as Go prints ``*metav1.LabelSelector`` (in the UnmanagedPods event)."""
    if sel is None:
        return "nil"
    labels = "".join(f"{k}: {v}," for k, v in sorted((sel.get("matchLabels") or {}).items()))
    exprs = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[{' '.join(e.get('values') or [])}],}},"
        for e in sel.get("matchExpressions") or ())
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}")


class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pdbs = ctx.informer(R.PODDISRUPTIONBUDGETS)
        self.pods = ctx.informer(R.PODS)
        self.replicasets = ctx.informer(R.REPLICASETS)
        self.deployments = ctx.informer(R.DEPLOYMENTS)
        self.statefulsets = ctx.informer(R.STATEFULSETS)
        self.watch(self.pdbs)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                              on_delete=self._pod_changed)
        #: (budget key, pod, recorded time) -> when this controller first saw the entry
        self._seen: dict[tuple[str, str, str], float] = {}

    def primary(self) -> Any:
        return self.pdbs

    def start_term(self) -> None:
        self._seen.clear()
        super().start_term()

    # --- handlers ----------------------------------------------------------------------------

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old is not new:
            self._pod_changed(new)

    def _pod_changed(self, pod: Obj) -> None:
        if condition(pod, "DisruptionTarget") is not None:
            self.enqueue(POD + object_key(pod))
        ns = _meta(pod).get("namespace", "")
        labels = _meta(pod).get("labels") or {}
        for pdb in self.pdbs.cache.by_index("namespace", ns):
            try:
                sel = from_label_selector((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if sel.matches(labels):
                self.enqueue(pdb)

    # --- the owner chain ---------------------------------------------------------------------

    async def _scale_of(self, ref: Obj, pod: Obj) -> tuple[str, int] | None:
        ns = _meta(pod).get("namespace", "")
        kind, group = ref.get("kind", ""), _group(ref.get("apiVersion", ""))
        uid = ref.get("uid", "")
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self.replicasets.cache.get_by(ns, ref.get("name", ""))
            if rs is None or _meta(rs).get("uid") != uid:
                return None
            owner = controller_of(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                d = self.deployments.cache.get_by(ns, owner.get("name", ""))
                if d is not None and _meta(d).get("uid") == owner.get("uid"):
                    return str(_meta(d).get("uid")), _replicas(d)
            return uid, _replicas(rs)
        if kind == "StatefulSet" and group == "apps":
            ss = self.statefulsets.cache.get_by(ns, ref.get("name", ""))
            if ss is None or _meta(ss).get("uid") != uid:
                return None
            return uid, _replicas(ss)
        return await self._scale_subresource(ref, ns)

    async def _scale_subresource(self, ref: Obj, ns: str) -> tuple[str, int] | None:
        rd = lookup_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rd is None:
            raise DisruptionError(f'no matches for kind "{ref.get("kind")}" in version '
                                  f'"{ref.get("apiVersion")}"')
        plural = f"{rd.resource}.{rd.group}" if rd.group else rd.resource
        if rd.subresource("scale") is None:
            raise DisruptionError(f"{plural} does not implement the scale subresource")
        try:
            scale = await self.client.get(Resource.of(rd), ref.get("name", ""), ns,
                                          subresource="scale")
        except NotFound:
            return None
        if _meta(scale).get("uid") != ref.get("uid"):
            return None
        return str(ref.get("uid")), int((scale.get("spec") or {}).get("replicas") or 0)

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(POD):
            return await self._stale_condition(key.removeprefix(POD))
        pdb = self.pdbs.cache.get(key)
        if pdb is None:
            self._seen = {k: v for k, v in self._seen.items() if k[0] != key}
            return None
        try:
            return await self._sync(key, pdb)
        except Conflict:
            raise  # the world moved: retried without the fail-safe
        except (DisruptionError, SelectorError) as e:
            await self._fail_safe(pdb, str(e))
            return FAILED_RETRY
        except NotFound:
            raise
        except APIError as e:
            await self._fail_safe(pdb, str(e))
            raise

    async def _sync(self, key: str, pdb: Obj) -> float | None:
        spec = pdb.get("spec") or {}
        ns, _ = split_key(key)
        pods = self.pods.cache.list(ns, from_label_selector(spec.get("selector")))
        if not pods:
            self.recorder.event(pdb, NORMAL, "NoPods", "No matching pods found")
        resolved: dict[str, tuple[str, int] | None] = {}
        for pod in pods:  # the owner chain may need the API (scale): resolve it first
            ref = controller_of(pod)
            if ref is not None and ref.get("uid") not in resolved:
                resolved[str(ref.get("uid"))] = await self._scale_of(ref, pod)
        try:
            want = expected_and_desired(spec, pods,
                                        lambda ref, _pod: resolved.get(str(ref.get("uid"))))
        except DisruptionError as e:
            self.recorder.event(pdb, WARNING, "CalculateExpectedPodCountFailed",
                                f"Failed to calculate the number of expected pods: {e}")
            raise
        if want.unmanaged:
            self.recorder.event(
                pdb, WARNING, "UnmanagedPods",
                f"Pods selected by this PodDisruptionBudget (selector: "
                f"{go_selector(spec.get('selector'))}) were found to be unmanaged. As a result, "
                "the status of the PDB cannot be calculated correctly, which may result in "
                "undefined behavior. To account for these pods please set "
                "\".spec.minAvailable\" field of the PDB to an integer value.")
        now_mono = self.clock.monotonic()

        def seen_for(pod: str, stamp: str) -> float:
            return now_mono - self._seen.setdefault((key, pod, stamp), now_mono)

        recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
        disrupted, recheck = build_disrupted(pods, recorded, self.clock.now(), seen_for)
        self._seen = {k: v for k, v in self._seen.items()
                      if k[0] != key or disrupted.get(k[1]) == k[2]}
        for name in set(recorded) - set(disrupted):
            late = self.pods.cache.get_by(ns, name)
            if late is not None and not _meta(late).get("deletionTimestamp"):
                self.recorder.event(late, WARNING, "NotDeleted",
                                    f"Pod was expected by PDB {ns}/{_meta(pdb).get('name')} "
                                    "to be deleted but it wasn't")
        status = with_status(pdb, healthy=count_healthy(pods, disrupted), desired=want.desired,
                             expected=want.expected, disrupted=disrupted, now=self.ctx.now())
        if status is not None:
            await self.client.update_status(R.PODDISRUPTIONBUDGETS, {**pdb, "status": status})
        return None if recheck is None else recheck + 1.0

    async def _stale_condition(self, key: str) -> float | None:
        """``syncStalePodDisruption``: a DisruptionTarget condition on a pod that was not
        deleted within 2 minutes goes back to False."""
        pod = self.pods.cache.get(key)
        now_mono = self.clock.monotonic()

        def seen_for(stamp: str) -> float:
            return now_mono - self._seen.setdefault((POD + key, "", stamp), now_mono)

        wait = stale_wait(pod, self.clock.now(), seen_for) if pod is not None else None
        if wait is None:
            self._seen = {k: v for k, v in self._seen.items() if k[0] != POD + key}
            return None
        if wait > 0:
            return wait
        assert pod is not None
        await self.client.update_status(R.PODS, cleared(pod, self.ctx.now()))
        log.info("pod %s: stale DisruptionTarget condition reset to False", key)
        return None

    async def _fail_safe(self, pdb: Obj, message: str) -> None:
        status = failed_status(pdb, message, self.ctx.now())
        if status == (pdb.get("status") or {}):
            return
        try:
            await self.client.update_status(R.PODDISRUPTIONBUDGETS, {**pdb, "status": status})
        except (Conflict, NotFound):
            pass  # looked at again with the new state


def _replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas", 1)
    return int(value) if isinstance(value, int) else 1

