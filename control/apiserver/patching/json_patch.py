"""RFC 6902 JSON Patch (`application/json-patch+json`, `kubectl patch --type=json`).

The operations are applied by the `jsonpatch` library; this module checks the document's shape
first and turns the library's exceptions into this package's error tree.
"""

from __future__ import annotations

import copy

import jsonpatch
import jsonpointer

from control.apiserver.patching._values import JSON, JSONObject
from control.apiserver.patching.errors import (
    INVALID_OPERATION,
    NOT_AN_OBJECT,
    PATH_NOT_FOUND,
    TEST_FAILED,
    MalformedPatchError,
    PatchApplyError,
    PatchPathNotFoundError,
    PatchTestFailedError,
)

__all__ = ["apply_json_patch"]

_OPERATIONS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def apply_json_patch(obj: JSONObject, patch_ops: JSON) -> JSONObject:
    """Apply the operations in `patch_ops` to `obj`, in order, all or nothing.

    Returns a new object; neither argument is changed and the result shares nothing with them.
    Raises `MalformedPatchError` (400) when `patch_ops` is not a list of operation objects with
    a known `op` and string `path`/`from`; `PatchTestFailedError` when a `test` fails;
    `PatchPathNotFoundError` when an operation's path (or `from`) is not in the document;
    `PatchApplyError` for any other operation that does not apply, or when the result is not a
    JSON object (a Kubernetes object must stay one).
    """
    _check_operations(patch_ops)
    result: JSON = copy.deepcopy(obj)
    for op in patch_ops:  # one at a time, so an error names its operation, not the document
        where = f"{op['op']} {op.get('from', '') + ' -> ' if 'from' in op else ''}{op['path']}"
        try:
            result = jsonpatch.apply_patch(result, [copy.deepcopy(op)], in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise PatchTestFailedError(
                TEST_FAILED, f"json patch test operation failed: {where}") from None
        except jsonpatch.InvalidJsonPatch as exc:
            raise MalformedPatchError(INVALID_OPERATION, f"invalid json patch: {exc}") from exc
        except (jsonpatch.JsonPatchPathNotFound, jsonpointer.JsonPointerException):
            raise PatchPathNotFoundError(
                PATH_NOT_FOUND, f"json patch path not found: {where}") from None
        except (jsonpatch.JsonPatchException, LookupError, TypeError, ValueError):
            raise PatchApplyError(
                INVALID_OPERATION, f"json patch does not apply: {where}") from None
    if not isinstance(result, dict):
        raise PatchApplyError(NOT_AN_OBJECT, "json patch result is not a JSON object")
    return result


def _check_operations(patch_ops: JSON) -> None:
    """Reject a document that is not a list of well-formed operations, before touching data."""
    if not isinstance(patch_ops, list):
        raise MalformedPatchError(NOT_AN_OBJECT, "json patch must be a JSON array of operations")
    for index, op in enumerate(patch_ops):
        where = f"json patch operation {index}"
        if not isinstance(op, dict):
            raise MalformedPatchError(INVALID_OPERATION, f"{where} is not a JSON object")
        if op.get("op") not in _OPERATIONS:
            raise MalformedPatchError(INVALID_OPERATION, f"{where}: unknown op {op.get('op')!r}")
        if not isinstance(op.get("path"), str):
            raise MalformedPatchError(INVALID_OPERATION, f"{where}: 'path' must be a string")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise MalformedPatchError(INVALID_OPERATION, f"{where}: 'from' must be a string")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise MalformedPatchError(INVALID_OPERATION, f"{where}: 'value' is missing")
