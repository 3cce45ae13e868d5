"""Object-meta validation shared by every strategy: name, namespace, labels, annotations,
owner references and finalizers on create, and the fields an update may not change.

Semantics of apimachinery ``ValidateObjectMeta``/``ValidateObjectMetaUpdate``. The registry
has already resolved ``generateName`` and filled ``metadata.namespace`` from the URL (or
cleared it for cluster-scoped kinds) when these run; ``resourceVersion`` is its business.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from control.api.errors import Cause

from .causes import child, duplicate, forbidden, immutable, index, invalid, required, too_long
from .names import NAME_RULES, dns1123_label, label_value, qualified_name

__all__ = [
    "TOTAL_ANNOTATION_SIZE",
    "duplicates",
    "validate_annotations",
    "validate_label_selector",
    "validate_labels",
    "validate_object_meta",
    "validate_object_meta_update",
    "validate_qualified_names",
]

TOTAL_ANNOTATION_SIZE = 256 * 1024
_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def validate_labels(labels: Any, field: str) -> list[Cause]:
    """Every key a qualified name, every value a label value (``field`` names the map)."""
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [invalid(field, labels, "must be a map of strings")]
    errs: list[Cause] = []
    for k, v in labels.items():
        errs += [invalid(field, k, msg) for msg in qualified_name(k)]
        if not isinstance(v, str):
            errs.append(invalid(field, v, "must be a string"))
        else:
            errs += [invalid(field, v, msg) for msg in label_value(v)]
    return errs


def validate_annotations(annotations: Any, field: str) -> list[Cause]:
    """Keys are qualified names (checked lower-cased, as Kubernetes does); keys and values
    together may not exceed 256 KiB."""
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [invalid(field, annotations, "must be a map of strings")]
    errs: list[Cause] = []
    size = 0
    for k, v in annotations.items():
        errs += [invalid(field, k, msg) for msg in qualified_name(str(k).lower())]
        if not isinstance(v, str):
            errs.append(invalid(field, v, "must be a string"))
        size += len(str(k).encode()) + len(str(v).encode())
    if size > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(field, TOTAL_ANNOTATION_SIZE))
    return errs


def validate_qualified_names(values: Any, field: str) -> list[Cause]:
    """A list of qualified names (finalizers, resource names): each checked, reported on
    ``field`` itself as Kubernetes does."""
    if values is None:
        return []
    if not isinstance(values, list):
        return [invalid(field, values, "must be a list of strings")]
    return [invalid(field, v, msg) for v in values for msg in qualified_name(str(v))]


def validate_label_selector(selector: Any, field: str) -> list[Cause]:
    """A ``metav1.LabelSelector`` (matchLabels and matchExpressions)."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [invalid(field, selector, "must be a label selector")]
    errs = validate_labels(selector.get("matchLabels"), child(field, "matchLabels"))
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        path = index(child(field, "matchExpressions"), i)
        op, values = expr.get("operator", ""), expr.get("values") or []
        if op in ("In", "NotIn") and not values:
            errs.append(required(child(path, "values"),
                                 "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            errs.append(forbidden(child(path, "values"), "may not be specified when `operator` "
                                  "is 'Exists' or 'DoesNotExist'"))
        elif op not in _SELECTOR_OPS:
            errs.append(invalid(child(path, "operator"), op, "not a valid selector operator"))
        k = str(expr.get("key", ""))
        errs += [invalid(child(path, "key"), k, msg) for msg in qualified_name(k)]
        for j, v in enumerate(values):
            errs += [invalid(index(child(path, "values"), j), v, m) for m in label_value(str(v))]
    return errs


def _validate_owner_references(refs: Any) -> list[Cause]:
    field = "metadata.ownerReferences"
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [invalid(field, refs, "must be a list")]
    errs: list[Cause] = []
    controllers: list[str] = []
    for ref in refs:
        ref = ref if isinstance(ref, Mapping) else {}
        api_version = str(ref.get("apiVersion") or "")
        checks = (("apiVersion", api_version.rpartition("/")[2], "version"),
                  ("kind", ref.get("kind"), "kind"), ("name", ref.get("name"), "name"),
                  ("uid", ref.get("uid"), "uid"))
        for name, value, word in checks:
            if not value:
                errs.append(invalid(child(field, name), ref.get(name) or "",
                                    f"{word} must not be empty"))
        if ref.get("controller") is True:
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        errs.append(invalid(field, refs, "Only one reference can have Controller set to true. "
                            f'Found "true" in references for {controllers[0]} and '
                            f"{controllers[1]}"))
    return errs


def _validate_finalizers(finalizers: Any) -> list[Cause]:
    field = "metadata.finalizers"
    errs = validate_qualified_names(finalizers, field)
    if isinstance(finalizers, list) and {"orphan", "foregroundDeletion"} <= set(finalizers):
        errs.append(invalid(field, finalizers,
                            "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def _validate_name(meta: Mapping[str, Any], name_rule: str) -> list[Cause]:
    name = meta.get("name")
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    return [invalid("metadata.name", name, msg) for msg in NAME_RULES[name_rule](str(name))]


def _validate_namespace(meta: Mapping[str, Any], namespaced: bool) -> list[Cause]:
    namespace = meta.get("namespace")
    if not namespaced:
        return [forbidden("metadata.namespace", "not allowed on this type")] if namespace else []
    if not namespace:
        return [required("metadata.namespace")]
    return [invalid("metadata.namespace", namespace, msg)
            for msg in dns1123_label(str(namespace))]


def validate_object_meta(obj: Mapping[str, Any], *, namespaced: bool,
                         name_rule: str) -> list[Cause]:
    """Create-time checks of ``obj["metadata"]``; ``name_rule`` is a key of
    :data:`~control.apiserver.strategies.names.NAME_RULES` (``subdomain``, ``label``, ``dns1035``,
    ``path``). Returns every problem found, in field order; never raises."""
    meta = _meta(obj)
    return [
        *_validate_name(meta, name_rule),
        *_validate_namespace(meta, namespaced),
        *validate_labels(meta.get("labels"), "metadata.labels"),
        *validate_annotations(meta.get("annotations"), "metadata.annotations"),
        *_validate_owner_references(meta.get("ownerReferences")),
        *_validate_finalizers(meta.get("finalizers")),
    ]


_IMMUTABLE_META = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                   "deletionGracePeriodSeconds")


def validate_object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """What an update may not change in metadata: identity, creation and deletion marks, and
    no new finalizers once deletion has begun. (Absent uid/creationTimestamp/deletion fields
    are copied from ``old`` by ``prepare_for_update`` before this runs.)"""
    new_meta, old_meta = _meta(new), _meta(old)
    errs = [immutable(f"metadata.{f}", new_meta.get(f) or "")
            for f in _IMMUTABLE_META if new_meta.get(f) != old_meta.get(f)]
    if old_meta.get("deletionTimestamp"):
        added = [f for f in new_meta.get("finalizers") or []
                 if f not in (old_meta.get("finalizers") or [])]
        if added:
            errs.append(forbidden("metadata.finalizers", "no new finalizers can be added if the "
                                  "object is being deleted, found new finalizers "
                                  + _go_strings(added)))
    return errs


def _go_strings(values: list[str]) -> str:
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def duplicates(values: list[str], field_of: Callable[[int], str]) -> list[Cause]:
    """A duplicate cause for each repeat of a value; ``field_of(i)`` names the i-th field."""
    seen: set[str] = set()
    errs: list[Cause] = []
    for i, v in enumerate(values):
        if v in seen:
            errs.append(duplicate(field_of(i), v))
        seen.add(v)
    return errs
