"""PATCH bodies: the four patch types applied to the stored object, errors as API errors.

JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch (merge keys per
kind) and server-side apply (field managers, conflicts).  A patch that sets
``metadata.resourceVersion`` makes the write conditional on it, as in kube-apiserver.
"""

from __future__ import annotations

import json
from typing import Any

from control.api.errors import APIError, BadRequest, Cause, Conflict, Invalid
from control.apiserver.patching import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    schema_for,
)
from control.apiserver.patching.apply import ApplyConflict, server_side_apply
from control.apiserver.patching.schema import PatchSchema

from .codec import parse_json, parse_yaml, type_error

__all__ = ["APPLY", "apply_patch", "parse_patch", "patch_resource_version"]

APPLY = "application/apply-patch+yaml"


def parse_patch(body: bytes, media: str) -> Any:
    """The patch document: JSON for the JSON types, YAML (JSON is YAML) for apply."""
    if media == APPLY:
        doc = parse_yaml(body)
        if not isinstance(doc, dict):
            raise BadRequest("apply patches must be a single object")
        return doc
    return parse_json(body).obj


def patch_resource_version(patch: Any) -> str | None:
    """``metadata.resourceVersion`` a merge-style patch sets: a precondition."""
    if isinstance(patch, dict):
        meta = patch.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("resourceVersion"), str):
            return meta["resourceVersion"] or None
    return None


def _api_error(e: PatchError) -> APIError:
    if isinstance(e, ApplyConflict):
        err = APIError(409, "Conflict", e.message, {"causes": [
            Cause("FieldManagerConflict", f'conflict with "{m}"', p).to_dict()
            for m, p in e.conflicts]})
        return err
    return APIError(e.code, e.status_reason, e.message)


def apply_patch(live: dict[str, Any] | None, patch: Any, media: str, *, kind: str,
                api_version: str, manager: str, force: bool, now: str,
                ignore_status: bool = False, schema: PatchSchema | None = None
                ) -> dict[str, Any]:
    """The patched object (``live`` is not changed).  ``live`` is None only for apply,
    which then creates.  ``schema`` overrides the kind's merge keys (a CRD's list types)."""
    schema = schema or schema_for(kind)
    try:
        if media == "application/json-patch+json":
            assert live is not None
            out = apply_json_patch(live, patch)
        elif media == "application/merge-patch+json":
            assert live is not None
            out = apply_merge_patch(live, patch)
        elif media == "application/strategic-merge-patch+json":
            assert live is not None
            out = apply_strategic_merge_patch(live, patch, schema)
        else:
            if not manager:
                raise BadRequest("PATCH with apply requires a fieldManager query parameter")
            out = server_side_apply(live, patch, manager=manager, force=force, now=now,
                                    schema=schema, api_version=api_version,
                                    ignore_status=ignore_status)
    except PatchError as e:
        raise _api_error(e) from None
    _check_types(out, api_version, kind)
    return out


def _check_types(patched: dict[str, Any], api_version: str, kind: str) -> None:
    """The patched object must decode as its kind, as kube's patcher decodes it into the Go
    type: a value of the wrong JSON type (``{"status": 1.5}``, ``{"spec": true}``) is 422
    ``patch: Invalid value``, never stored (custom kinds are checked by their schema)."""
    problem = type_error(api_version, kind, patched)
    if problem is None:
        return
    shown = json.dumps(patched, separators=(",", ":"))
    shown = shown if len(shown) <= 512 else shown[:512] + "..."
    raise Invalid("", "", [Cause("FieldValueInvalid", f"Invalid value: {json.dumps(shown)}: "
                                 f"{problem}", "patch")])


def check_conflict_free(expected: str | None, live: dict[str, Any], resource: str,
                        name: str, group: str) -> None:
    if expected and live["metadata"].get("resourceVersion") != expected:
        raise Conflict(resource, name, group=group)
