"""Jobs: run-to-completion pods. The selector is generated from the job's uid unless the
client asks for ``manualSelector``, so the registry calls :meth:`JobStrategy.apply_uid`
once it has assigned the uid; the template is fixed after create.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .causes import child, immutable, invalid, one_of, required
from .workloads import WorkloadStrategy, nonnegative, selector_value

__all__ = ["CONTROLLER_UID_LABEL", "JOB_NAME_LABEL", "JobStrategy"]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
_LEGACY_UID_LABEL = "controller-uid"
_LEGACY_NAME_LABEL = "job-name"
_IMMUTABLE_SPEC = ("selector", "template", "completionMode")


def _manual(spec: Mapping[str, Any]) -> bool:
    return spec.get("manualSelector") is True


class JobStrategy(WorkloadStrategy):
    """Defaults of ``SetDefaults_Job``; template pods restart OnFailure or Never."""

    needs_uid_selector = True
    strategy_field = None
    spec_defaults = (("backoffLimit", 6), ("completionMode", "NonIndexed"), ("suspend", False))
    restart_policies = ("OnFailure", "Never")
    selector_noun = "job"
    deadline_owner = None

    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            if spec.get("completions") is None and spec.get("parallelism") is None:
                spec["completions"] = 1
            spec.setdefault("parallelism", 1)
            if spec.get("backoffLimitPerIndex") is not None and spec.get("backoffLimit") is None:
                spec["backoffLimit"] = 2**31 - 1  # math.MaxInt32: only the per-index limit counts
            spec.setdefault("podReplacementPolicy",
                            "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
        super().default(obj)

    def apply_uid(self, obj: dict[str, Any], uid: str) -> None:
        """Generate the selector (``batch.kubernetes.io/controller-uid: <uid>``) and label the
        template with the uid and job name, as the job controller's pods must be; nothing
        with ``manualSelector: true``. Labels already present are kept."""
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict) or _manual(spec):
            return
        name = (obj.get("metadata") or {}).get("name", "")
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        for k, v in ((CONTROLLER_UID_LABEL, uid), (JOB_NAME_LABEL, name),
                     (_LEGACY_UID_LABEL, uid), (_LEGACY_NAME_LABEL, name)):
            labels.setdefault(k, v)
        if spec.get("selector") is None:
            spec["selector"] = {"matchLabels": {CONTROLLER_UID_LABEL: uid}}

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping) or _manual(spec):
            return super().validate_spec(obj)
        uid = (obj.get("metadata") or {}).get("uid", "")
        return super().validate_spec(obj) + _generated_selector_errors(spec, uid)

    def validate_kind_spec(self, spec: Mapping[str, Any]) -> list[Cause]:
        errs = nonnegative(spec, "spec", "parallelism", "completions", "backoffLimit",
                           "activeDeadlineSeconds", "ttlSecondsAfterFinished")
        mode = spec.get("completionMode")
        errs += one_of(mode, "spec.completionMode", ("NonIndexed", "Indexed"))
        if mode == "Indexed" and spec.get("completions") is None:
            errs.append(required("spec.completions", "when completion mode is Indexed"))
        return errs

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        errs: list[Cause] = []
        for f in _IMMUTABLE_SPEC:
            if new_spec.get(f) != old_spec.get(f):
                value = new_spec.get(f)
                errs.append(immutable(child("spec", f),
                                      selector_value(value) if f == "selector" else value))
        completions = new_spec.get("completions")
        elastic = (new_spec.get("completionMode") == "Indexed"
                   and completions == new_spec.get("parallelism"))
        if completions != old_spec.get("completions") and not elastic:
            errs.append(immutable("spec.completions", completions))
        return errs


def _generated_selector_errors(spec: Mapping[str, Any], uid: str) -> list[Cause]:
    """Without manualSelector the selector must be the one :meth:`apply_uid` generated."""
    selector = spec.get("selector")
    if selector is None:
        return []  # already reported as required
    expected = {"matchLabels": {CONTROLLER_UID_LABEL: uid}}
    errs: list[Cause] = []
    if selector != expected:
        errs.append(invalid("spec.selector", selector_value(selector),
                            "`selector` not auto-generated"))
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(CONTROLLER_UID_LABEL) != uid:
        errs.append(invalid(f"spec.template.metadata.labels[{CONTROLLER_UID_LABEL}]",
                            labels.get(CONTROLLER_UID_LABEL, ""), f"must be '{uid}'"))
    return errs
