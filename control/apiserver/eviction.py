"""The ``pods/eviction`` subresource: a pod deletion that respects PodDisruptionBudgets
(kube-apiserver's ``EvictionREST``), what ``kubectl drain`` and the node agents use.

:func:`evict` decides, in Kubernetes' order:

1. A pod that is terminal (Succeeded, Failed), Pending or already being deleted is deleted
   without looking at budgets (a Pending one only if it is still the version read).
2. The budgets of the pod's namespace whose (non-empty) selector matches its labels: none →
   delete; more than one → 500 ("more than one PodDisruptionBudget").
3. A pod that is not Ready is deleted without spending the budget when the budget says
   ``unhealthyPodEvictionPolicy: AlwaysAllow``, or when it is healthy enough already
   (``currentHealthy >= desiredHealthy > 0``); the delete is then guarded by the pod's
   resourceVersion, so a pod that became Ready meanwhile is not taken (429, retry).
4. Otherwise the budget is spent: a compare-and-swap of its status on resourceVersion that
   refuses with 429 TooManyRequests while its status lags its spec (``observedGeneration <
   generation``) or it allows no disruption, and else decrements ``disruptionsAllowed`` and
   records the pod in ``disruptedPods`` (so the disruption controller does not count it as
   healthy); then the pod is deleted with the Eviction's ``deleteOptions``.

Conflicts are retried on fresh reads, except where the caller set its own resourceVersion
precondition.  Dry runs check everything and write nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from control.api.catalog import ResourceDef, lookup
from control.api.errors import (
    BadRequest,
    Cause,
    Conflict,
    Forbidden,
    Timeout,
    TooManyRequests,
)
from control.api.selectors import SelectorError, from_label_selector
from control.apiserver.admission import CREATE, AdmissionRequest
from control.apiserver.rbac import SYSTEM_MASTERS, UserInfo
from control.apiserver.requestinfo import QueryOptions
from control.apiserver.storage import GroupResource

from .reads import make_filter
from .registry import WriteContext
from .state import APIState

__all__ = ["MAX_DISRUPTED_PODS", "VIOLATION", "evict"]

#: Budgets with this many evictions the disruption controller has not yet seen refuse more.
MAX_DISRUPTED_PODS = 2000
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE = ("This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.")
_ATTEMPTS = 20  # kube's EvictionsRetry steps
_APISERVER = UserInfo(name="system:apiserver", groups=(SYSTEM_MASTERS,))
_PODS = GroupResource("", "pods")


def _rd(group: str, resource: str) -> ResourceDef:
    rd = lookup(group, "v1", resource)
    assert rd is not None, resource
    return rd


def _status(status: str, code: int, message: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": status}
    if message:
        out["message"] = message
    out["code"] = code
    return out


def _too_many(message: str, retry_after: int) -> TooManyRequests:
    err = TooManyRequests(VIOLATION, retry_after)
    err.details["causes"] = [Cause("DisruptionBudget", message).to_dict()]
    return err


def _still_processing(pdb_name: str) -> TooManyRequests:
    return _too_many(f"The disruption budget {pdb_name} is still being processed by the "
                     "server.", 10)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _can_ignore_budget(pod: dict[str, Any]) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(
        pod["metadata"].get("deletionTimestamp"))


def _enforce_version(pod: dict[str, Any]) -> bool:
    """Deleting a Pending pod must not race with it becoming Ready (and budgeted)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _with_version(options: dict[str, Any], rv: str) -> dict[str, Any]:
    out = copy.deepcopy(options)
    out.setdefault("preconditions", {})
    out["preconditions"] = {**(out["preconditions"] or {}), "resourceVersion": rv}
    return out


def _dry_run(ctx: WriteContext, options: dict[str, Any]) -> bool:
    """``propagateDryRun``: the request's dryRun and the deleteOptions' must agree."""
    query = ["All"] if ctx.dry_run else []
    body = options.get("dryRun") or []
    if query and body and list(body) != query:
        raise BadRequest(f"Non-matching dry-run options in request and content: {query} and "
                         f"{list(body)}")
    if not isinstance(body, list) or any(v != "All" for v in body):
        raise BadRequest(f'deleteOptions.dryRun: Unsupported value: {body!r}: supported '
                         'values: "All"')
    return bool(query or body)


def _selects(pdb: dict[str, Any], pod: dict[str, Any]) -> bool:
    """A budget whose selector is missing, empty or invalid selects nothing here."""
    selector = (pdb.get("spec") or {}).get("selector")
    if not selector:
        return False
    try:
        parsed = from_label_selector(selector)
    except (SelectorError, AttributeError, TypeError):
        return False
    return not parsed.empty and parsed.matches(pod["metadata"].get("labels") or {})


def _set_condition(status: dict[str, Any], now: str) -> None:
    """``UpdateDisruptionAllowedCondition`` once no disruption is left."""
    allowed = status.get("disruptionsAllowed", 0) > 0
    wanted = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
              "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
              "observedGeneration": status.get("observedGeneration", 0)}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    for c in conditions:
        if c.get("type") == wanted["type"]:
            if c.get("status") != wanted["status"] or not c.get("lastTransitionTime"):
                c["lastTransitionTime"] = now
            c.update(wanted)
            break
    else:
        conditions.append({**wanted, "lastTransitionTime": now})
    status["conditions"] = conditions


def _spend(pdb: dict[str, Any], pod_name: str, now: str) -> dict[str, Any]:
    """``checkAndDecrement`` on a private copy of the budget: the budget with one disruption
    spent on ``pod_name``, or the refusal."""
    meta, status = pdb["metadata"], pdb.setdefault("status", {})
    name = meta["name"]
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        raise _still_processing(name)
    allowed = status.get("disruptionsAllowed", 0)
    if allowed < 0:
        raise Forbidden("poddisruptionbudget", name, "pdb disruptions allowed is negative",
                        group="policy")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise Forbidden("poddisruptionbudget", name, "DisruptedPods map too big - too many "
                        "evictions not confirmed by PDB controller", group="policy")
    if allowed == 0:
        raise _too_many(f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} "
                        f"healthy pods and has {status.get('currentHealthy', 0)} currently", 0)
    status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        _set_condition(status, now)
    status.setdefault("disruptedPods", {})
    status["disruptedPods"] = {**(status["disruptedPods"] or {}), pod_name: now}
    return pdb


async def _spend_budget(api: APIState, pdb: dict[str, Any], pod_name: str,
                        dry_run: bool) -> None:
    namespace, name = pdb["metadata"]["namespace"], pdb["metadata"]["name"]
    now = api.inputs.timestamp()
    if dry_run:
        _spend(copy.deepcopy(pdb), pod_name, now)
        return
    ctx = WriteContext(user=_APISERVER, rd=_rd("policy", "poddisruptionbudgets"),
                       namespace=namespace, name=name, subresource="status",
                       field_manager="kube-apiserver")
    try:
        # a new object, not the current one changed in place: the status update pipeline
        # compares the two
        await api.registry.mutate(
            ctx, lambda current: _spend(copy.deepcopy(current), pod_name, now))
    except Conflict:
        raise Timeout(f'couldn\'t update PodDisruptionBudget "{name}" due to conflicts',
                      10) from None


async def _budgets(api: APIState, pod: dict[str, Any]) -> list[dict[str, Any]]:
    rd = _rd("policy", "poddisruptionbudgets")
    opts = QueryOptions()
    items, _ = await api.reader.list(rd, pod["metadata"]["namespace"], opts,
                                     make_filter(rd, opts))
    return [p for p in items if _selects(p, pod)]


def _admission(ctx: WriteContext, eviction: dict[str, Any], dry_run: bool) -> AdmissionRequest:
    return AdmissionRequest(operation=CREATE, group="", version="v1", resource="pods",
                            subresource="eviction", kind="Eviction", namespace=ctx.namespace,
                            name=ctx.name, obj=eviction, old_obj=None, user=ctx.user,
                            dry_run=dry_run)


async def evict(api: APIState, ctx: WriteContext,
                eviction: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Evict pod ``ctx.namespace/ctx.name`` as ``ctx.user`` (see the module docstring).
    Returns the HTTP code and Status to answer (201 Success, or 500 for a pod covered by
    several budgets); refusals raise APIError (404 pod, 429 budget, 409 precondition, ...)."""
    raw = eviction.get("metadata")
    meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if meta.get("name") != ctx.name:
        raise BadRequest("name in URL does not match name in Eviction object")
    if meta.get("namespace") not in (None, "", ctx.namespace):
        raise BadRequest("the namespace of the provided object does not match the namespace "
                         "sent on the request")
    options = eviction.get("deleteOptions")
    options = copy.deepcopy(options) if isinstance(options, dict) else {}
    dry_run = _dry_run(ctx, options)
    req = _admission(ctx, eviction, dry_run)
    await api.registry.admission.admit(req, api.view)
    await api.registry.admission.validate(req, api.view)
    user_rv = (options.get("preconditions") or {}).get("resourceVersion")
    delete_ctx = WriteContext(user=ctx.user, rd=_rd("", "pods"), namespace=ctx.namespace,
                              name=ctx.name, field_manager=ctx.field_manager, dry_run=dry_run)
    for attempt in range(_ATTEMPTS):
        pod = await api.storage.get(_PODS, ctx.namespace, ctx.name)
        if not _can_ignore_budget(pod):
            break
        opts = options
        if _enforce_version(pod) and user_rv is None:
            opts = _with_version(options, pod["metadata"]["resourceVersion"])
        try:
            await api.registry.delete(delete_ctx, opts)
        except Conflict:
            if user_rv is not None or attempt == _ATTEMPTS - 1:
                raise
            continue
        return 201, _status("Success", 201)
    return await _evict_budgeted(api, delete_ctx, pod, options, user_rv)


async def _evict_budgeted(api: APIState, ctx: WriteContext, pod: dict[str, Any],
                          options: dict[str, Any], user_rv: Any) -> tuple[int, dict[str, Any]]:
    budgets = await _budgets(api, pod)
    if len(budgets) > 1:
        return 500, _status("Failure", 500, MULTIPLE)
    guard = False
    if budgets:
        pdb = budgets[0]
        spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
        spend = True
        if not _ready(pod):
            guard = True  # the pod must not become Ready (and budgeted) before it goes
            desired = status.get("desiredHealthy", 0)
            if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow" or (
                    status.get("currentHealthy", 0) >= desired > 0):
                spend = False
        if spend:
            await _spend_budget(api, pdb, ctx.name, ctx.dry_run)
    opts = _with_version(options, pod["metadata"]["resourceVersion"]) if guard else options
    try:
        await api.registry.delete(ctx, opts)
    except Conflict:
        if guard and user_rv is None:
            raise _still_processing(budgets[0]["metadata"]["name"]) from None
        raise
    return 201, _status("Success", 201)

