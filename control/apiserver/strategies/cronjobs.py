"""CronJobs: a Job template run on a cron schedule.  Defaults of ``SetDefaults_CronJob``
(the template's pod spec is defaulted, its job spec is not), validation of
``ValidateCronJobCreate``/``ValidateCronJobUpdate``: the schedule parses as robfig/cron's
standard syntax, the time zone is a known IANA name, the job template is a valid Job spec
whose selector the Job registry will generate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from control.api.cron import CronError, load_location, parse_schedule
from control.api.errors import Cause

from .base import BaseStrategy
from .causes import as_mapping, child, invalid, not_supported, one_of, required
from .meta import (
    validate_annotations,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
)
from .pods import default_pod_spec, validate_pod_template
from .workloads import nonnegative, selector_value

__all__ = ["CONCURRENCY_POLICIES", "CronJobStrategy", "validate_job_template"]

CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
_SPEC_DEFAULTS = (("concurrencyPolicy", "Allow"), ("suspend", False),
                  ("successfulJobsHistoryLimit", 3), ("failedJobsHistoryLimit", 1))
#: The CronJob controller names its Jobs ``<cronjob>-<11 characters>``; Job names are labels.
_MAX_NAME = 63 - 11
_TZ_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


def _validate_time_zone(tz: Any, path: str) -> list[Cause]:
    """``validateTimeZone``: an explicit IANA name the time zone database knows."""
    if tz is None:
        return []
    if not isinstance(tz, str) or not tz:
        return [invalid(path, tz, "timeZone must be nil or non-empty string")]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.fullmatch(part):
            return [invalid(path, tz, f"unknown time zone {tz}")]
    errs: list[Cause] = []
    if tz.lower() == "local":
        errs.append(invalid(path, tz, "timeZone must be an explicit time zone as defined in "
                                      "https://www.iana.org/time-zones"))
    try:
        load_location(tz)
    except CronError as e:
        errs.append(invalid(path, tz, str(e)))
    return errs


def _validate_schedule(schedule: Any, path: str, *, time_zone: Any,
                       allow_tz: bool) -> list[Cause]:
    if not schedule:
        return [required(path)]
    if not isinstance(schedule, str):
        return [invalid(path, schedule, "must be a string")]
    errs: list[Cause] = []
    try:
        parse_schedule(schedule)
    except CronError as e:
        errs.append(invalid(path, schedule, str(e)))
    if "TZ" in schedule:
        if not allow_tz:
            errs.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use "
                                                "timeZone field instead"))
        elif time_zone is not None:
            errs.append(invalid(path, schedule, "cannot use both timeZone field and TZ or "
                                                "CRON_TZ in schedule"))
    return errs


def validate_job_template(template: Any, path: str) -> list[Cause]:
    """A ``JobTemplateSpec`` at ``path``: its labels and annotations, the Job spec's own
    checks, a pod template whose pods restart OnFailure or Never, and no selector (the Job
    registry generates it) nor ``manualSelector: true``."""
    template = as_mapping(template)
    meta = as_mapping(template.get("metadata"))
    errs = validate_labels(meta.get("labels"), child(path, "metadata", "labels"))
    errs += validate_annotations(meta.get("annotations"), child(path, "metadata", "annotations"))
    spec_path = child(path, "spec")
    spec = as_mapping(template.get("spec"))
    errs += nonnegative(spec, spec_path, "parallelism", "completions", "activeDeadlineSeconds",
                        "backoffLimit", "ttlSecondsAfterFinished")
    if spec.get("completionMode") is not None:
        errs += one_of(spec["completionMode"], child(spec_path, "completionMode"),
                       ("NonIndexed", "Indexed"))
    errs += validate_pod_template(spec.get("template"), child(spec_path, "template"),
                                  restart_policies=("OnFailure", "Never"))
    if spec.get("selector") is not None:
        errs.append(invalid(child(spec_path, "selector"), selector_value(spec["selector"]),
                            "`selector` will be auto-generated"))
    if spec.get("manualSelector") is True:
        errs.append(not_supported(child(spec_path, "manualSelector"), True, ("nil", "false")))
    return errs


def _validate_spec(spec: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """``validateCronJobSpec``; ``old`` is the stored spec on update (a TZ prefix it already
    had may stay; an unchanged time zone is not re-checked)."""
    time_zone = spec.get("timeZone")
    allow_tz = old is not None and "TZ" in str(old.get("schedule") or "")
    errs = _validate_schedule(spec.get("schedule"), "spec.schedule", time_zone=time_zone,
                              allow_tz=allow_tz)
    errs += nonnegative(spec, "spec", "startingDeadlineSeconds")
    if old is None or old.get("timeZone") != time_zone:
        errs += _validate_time_zone(time_zone, "spec.timeZone")
    errs += one_of(spec.get("concurrencyPolicy"), "spec.concurrencyPolicy", CONCURRENCY_POLICIES)
    errs += validate_job_template(spec.get("jobTemplate"), "spec.jobTemplate")
    errs += nonnegative(spec, "spec", "successfulJobsHistoryLimit", "failedJobsHistoryLimit")
    return errs


class CronJobStrategy(BaseStrategy):
    """Spec changes bump generation; status has its own subresource.  The 52-character
    name limit holds on create only (older, longer names may still be updated)."""

    tracks_generation = True

    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        for k, v in _SPEC_DEFAULTS:
            if spec.get(k) in (None, ""):
                spec[k] = v
        template = spec.get("jobTemplate")
        job_spec = template.get("spec") if isinstance(template, dict) else None
        pod = job_spec.get("template") if isinstance(job_spec, dict) else None
        if isinstance(pod, dict) and isinstance(pod.setdefault("spec", {}), dict):
            default_pod_spec(pod["spec"])

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        errs = super().validate(obj)
        name = str(as_mapping(obj.get("metadata")).get("name") or "")
        if len(name) > _MAX_NAME:
            errs.append(invalid("metadata.name", name,
                                f"must be no more than {_MAX_NAME} characters"))
        return errs

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        return _validate_spec(as_mapping(obj.get("spec")), None)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return [*validate_object_meta_update(new, old),
                *validate_object_meta(new, namespaced=self.namespaced, name_rule=self.name_rule),
                *_validate_spec(as_mapping(new.get("spec")), as_mapping(old.get("spec")))]
