"""The apiserver's PATCH engines: pure functions from (object, patch) to a new object.

`apply_json_patch` (RFC 6902), `apply_merge_patch` / `create_merge_patch` (RFC 7386) and
`apply_strategic_merge_patch` with its per-kind `PatchSchema` (`schema_for(kind)`).  They do
no I/O, never change their arguments, and fail only with `PatchError` subclasses, whose `code`
(400 or 422) and `status_reason` the apiserver copies into a `Status`.
"""

from __future__ import annotations

from control.apiserver.patching.errors import (
    MalformedPatchError,
    PatchApplyError,
    PatchError,
    PatchPathNotFoundError,
    PatchTestFailedError,
)
from control.apiserver.patching.json_patch import apply_json_patch
from control.apiserver.patching.merge_patch import apply_merge_patch, create_merge_patch
from control.apiserver.patching.schema import FieldStrategy, PatchSchema, schema_for
from control.apiserver.patching.strategic import apply_strategic_merge_patch

__all__ = [
    "FieldStrategy",
    "MalformedPatchError",
    "PatchApplyError",
    "PatchError",
    "PatchPathNotFoundError",
    "PatchSchema",
    "PatchTestFailedError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "create_merge_patch",
    "schema_for",
]
