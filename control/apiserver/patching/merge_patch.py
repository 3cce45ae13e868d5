"""RFC 7386 JSON Merge Patch (`application/merge-patch+json`: `kubectl label`, `annotate`,
`scale`, `patch --type=merge`), and the diff that produces one."""

from __future__ import annotations

import copy

from control.apiserver.patching._values import JSON, JSONObject, json_equal
from control.apiserver.patching.errors import NOT_AN_OBJECT, MalformedPatchError, PatchApplyError

__all__ = ["apply_merge_patch", "create_merge_patch"]


def apply_merge_patch(obj: JSONObject, patch: JSON) -> JSONObject:
    """Merge `patch` into `obj`: a null deletes the key, a map merges recursively into the map
    it meets (or into an empty one), anything else, lists included, replaces.

    Returns a new object sharing nothing with the arguments, which are left unchanged.
    Raises `MalformedPatchError` when `patch` is not a JSON object (RFC 7386 would let it
    replace the whole document, but a Kubernetes object must stay an object) and
    `PatchApplyError` when `obj` is not one.
    """
    if not isinstance(patch, dict):
        raise MalformedPatchError(NOT_AN_OBJECT, "merge patch must be a JSON object")
    if not isinstance(obj, dict):
        raise PatchApplyError(NOT_AN_OBJECT, "the patched document is not a JSON object")
    result: JSONObject = _merge(copy.deepcopy(obj), patch)
    return result


def _merge(target: JSON, patch: JSON) -> JSON:
    """Merge `patch` into `target`, which this module owns (a private copy): dicts in it are
    updated in place; what comes from `patch` is copied."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def create_merge_patch(original: JSONObject, modified: JSONObject) -> JSONObject:
    """The smallest merge patch that turns `original` into `modified`.

    Contract: `apply_merge_patch(original, create_merge_patch(original, modified))` equals
    `modified` whenever `modified` holds no null map value (a merge patch cannot set a key to
    null: null means delete, so such a key ends up absent).  Lists are compared whole and
    replaced whole.  The result shares nothing with the arguments.
    """
    patch: JSONObject = {}
    for key in original:
        if key not in modified:
            patch[key] = None
    for key, new in modified.items():
        if key not in original:
            patch[key] = copy.deepcopy(new)
            continue
        old = original[key]
        if isinstance(old, dict) and isinstance(new, dict):
            nested = create_merge_patch(old, new)
            if nested:
                patch[key] = nested
        elif not json_equal(old, new):
            patch[key] = copy.deepcopy(new)
    return patch
