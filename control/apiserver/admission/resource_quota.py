"""ResourceQuota: the last validating plugin; it refuses a create (or a growing update) that
would push a quota in the namespace past ``spec.hard``, and charges the usage it admits.

The decision is made twice: first against the quotas in the watch cache (a cheap, early
refusal), then inside each quota's compare-and-swap status update, against the object as
written, so two concurrent creates cannot both take the last unit.  Quotas are charged one
after another; if a later one refuses, earlier charges stay until the quota controller
recomputes usage, an over-count that only errs on the safe side.  Dry runs are checked but
never charged, and deletes release nothing here (the controller recomputes).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from control.api.errors import NotFound
from control.api.podresources import ResourceList, resource_list
from control.api.quantity import Quantity
from control.api.quota import (
    nonnegative_delta,
    object_usage,
    pod_constraint_failure,
    quota_matches,
    tracks_pods,
)
from control.apiserver.admission.request import (
    CREATE,
    UPDATE,
    AdmissionRequest,
    ClusterView,
    QuotaWriter,
    forbidden,
)

__all__ = ["ResourceQuota"]

# Kinds whose usage can grow on update (a Service changing type, a claim being resized).
_UPDATABLE = frozenset({("", "services"), ("", "persistentvolumeclaims")})
_ZERO = Quantity.of(0)


class ResourceQuota:
    name = "ResourceQuota"

    def __init__(self, *, quota_writer: QuotaWriter) -> None:
        self._writer = quota_writer

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        delta = _request_delta(req)
        if not delta or req.obj is None:
            return
        pod_create = (req.group, req.resource, req.operation) == ("", "pods", CREATE)
        charges: list[tuple[str, ResourceList]] = []
        for quota in _quotas(req, view):
            name = str(quota["metadata"]["name"])
            hard = (quota.get("spec") or {}).get("hard") or {}
            if not hard or not quota_matches(quota, req.group, req.resource, req.obj):
                continue
            if pod_create and tracks_pods(hard):
                failure = pod_constraint_failure(hard, req.obj)
                if failure:
                    raise forbidden(req, f"failed quota: {name}: {failure}")
            charge = {k: q for k, q in delta.items() if k in hard}
            if charge:
                _new_used(req, quota, charge)
                charges.append((name, charge))
        if req.dry_run:
            return
        for name, charge in charges:
            try:
                await self._writer.update_quota_status(
                    req.namespace, name, functools.partial(_charged, req, charge))
            except NotFound:
                continue  # deleted meanwhile: nothing left to charge


def _quotas(req: AdmissionRequest, view: ClusterView) -> list[dict[str, Any]]:
    items = view.list("", "resourcequotas", req.namespace)
    return sorted(items, key=lambda q: str((q.get("metadata") or {}).get("name", "")))


def _request_delta(req: AdmissionRequest) -> ResourceList:
    """What this request adds: a create's whole usage; for an update of a Service or claim,
    the growth over the stored object (an update that is really a create pays in full)."""
    if not req.namespace or req.subresource or req.obj is None:
        return {}
    usage = object_usage(req.group, req.resource, req.obj)
    if req.operation == CREATE:
        return usage
    if req.operation == UPDATE and (req.group, req.resource) in _UPDATABLE:
        old = req.old_obj
        if old is None or not (old.get("metadata") or {}).get("resourceVersion"):
            return usage
        return nonnegative_delta(usage, object_usage(req.group, req.resource, old))
    return {}


def _new_used(req: AdmissionRequest, quota: Mapping[str, Any],
              charge: ResourceList) -> ResourceList:
    """``status.used + charge`` for the charged names; raises 403 if any passes ``spec.hard``.
    A name missing from ``status.used`` counts as unused (the controller has not caught up)."""
    name = str(quota["metadata"]["name"])
    hard = resource_list((quota.get("spec") or {}).get("hard"))
    used_now = resource_list((quota.get("status") or {}).get("used"))
    used = {k: used_now.get(k, _ZERO) for k in charge}
    new = {k: used[k] + q for k, q in charge.items()}
    over = sorted(k for k in charge if k in hard and new[k] > hard[k])
    if over:
        raise forbidden(req, f"exceeded quota: {name}, requested: {_show(charge, over)}, "
                             f"used: {_show(used, over)}, limited: {_show(hard, over)}")
    return new


def _charged(req: AdmissionRequest, charge: ResourceList,
             quota: dict[str, Any]) -> dict[str, Any]:
    """The ``mutate`` for :meth:`QuotaWriter.update_quota_status`: the quota as written,
    re-checked against its current hard limits, with the charge added to ``status.used``."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    charge = {k: q for k, q in charge.items() if k in hard}
    out = copy.deepcopy(quota)
    if not charge:
        return out
    new = _new_used(req, out, charge)
    status = out.get("status") or {}
    status["used"] = {**(status.get("used") or {}), **{k: str(q) for k, q in new.items()}}
    out["status"] = status
    return out


def _show(values: Mapping[str, Quantity], names: list[str]) -> str:
    return ",".join(f"{k}={values[k]}" for k in names)
