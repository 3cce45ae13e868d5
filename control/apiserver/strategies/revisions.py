"""ControllerRevisions (apps/v1): the immutable snapshots of a template that the DaemonSet and
StatefulSet controllers (and ``kubectl rollout history``) keep.  ``data`` is required and
never changes; ``revision`` is a non-negative number the controllers may renumber.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .base import BaseStrategy
from .causes import Raw, immutable, invalid, required

__all__ = ["ControllerRevisionStrategy"]


class ControllerRevisionStrategy(BaseStrategy):
    """``ValidateControllerRevision`` and ``ValidateControllerRevisionUpdate``."""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        errs: list[Cause] = []
        if obj.get("data") is None:
            errs.append(required("data", "data is mandatory"))
        revision = obj.get("revision", 0)
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            errs.append(invalid("revision", revision, "must be greater than or equal to 0"))
        return errs

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        if new.get("data") != old.get("data"):
            value = Raw(json.dumps(new.get("data"), separators=(",", ":"), sort_keys=True))
            return [immutable("data", value)]
        return []
