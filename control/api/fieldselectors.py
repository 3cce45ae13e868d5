"""Field selectors (``fieldSelector=spec.nodeName=n1``): parsed, checked against each kind's
table of selectable fields, and matched against objects.  Semantics follow apimachinery
``pkg/fields`` and the per-kind field label conversions.  Pure: no I/O, values are immutable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .selectors import SelectorError

__all__ = [
    "SELECTABLE_FIELDS",
    "FieldRequirement",
    "FieldSelector",
    "field_selector_for_kind",
    "object_fields",
    "parse_field_selector",
]


# --- field selectors ----------------------------------------------------------------------

_META = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")}

#: kind -> selectable field label -> JSON path in the object (pkg/apis/*/v1 conversion.go).
#: Kinds not listed accept only metadata.name and metadata.namespace.
SELECTABLE_FIELDS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "Pod": {
        **_META,
        **{
            f"spec.{f}": ("spec", f)
            for f in (
                "nodeName",
                "restartPolicy",
                "schedulerName",
                "serviceAccountName",
                "hostNetwork",
            )
        },
        **{f"status.{f}": ("status", f) for f in ("phase", "podIP", "podIPs", "nominatedNodeName")},
    },
    "Node": {
        "metadata.name": ("metadata", "name"),
        "spec.unschedulable": ("spec", "unschedulable"),
    },
    "Namespace": {"metadata.name": ("metadata", "name"), "status.phase": ("status", "phase")},
    "Event": {
        **_META,
        **{
            f"involvedObject.{f}": ("involvedObject", f)
            for f in (
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            )
        },
        "reason": ("reason",),
        "reportingComponent": ("reportingComponent",),
        "source": ("source", "component"),
        "type": ("type",),
    },
    "Secret": {**_META, "type": ("type",)},
    "Service": {**_META, "spec.clusterIP": ("spec", "clusterIP"), "spec.type": ("spec", "type")},
    "ReplicationController": {**_META, "status.replicas": ("status", "replicas")},
    "ReplicaSet": {**_META, "status.replicas": ("status", "replicas")},
    "Job": {**_META, "status.successful": ("status", "successful")},
}
# Values Kubernetes reports when the field is absent (Go zero values of non-string fields).
_ZERO_VALUES = {
    ("Pod", "spec.hostNetwork"): "false",
    ("Node", "spec.unschedulable"): "false",
    ("ReplicationController", "status.replicas"): "0",
    ("ReplicaSet", "status.replicas"): "0",
    ("Job", "status.successful"): "0",
}
_ALIASES = {("Pod", "spec.host"): "spec.nodeName"}  # old v1 clients


@dataclass(frozen=True)
class FieldRequirement:
    """``field=value`` (or ``==``), or ``field!=value`` when ``negated``."""

    field: str
    value: str
    negated: bool = False

    def matches(self, fields: Mapping[str, str]) -> bool:
        """A missing field reads as "" (so ``spec.nodeName=`` selects unscheduled pods)."""
        return (fields.get(self.field, "") == self.value) != self.negated

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{'!=' if self.negated else '='}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements; none selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def requires_exact_match(self, field: str) -> str | None:
        """The value ``field`` must equal, if an ``=`` term pins it (RequiresExactMatch)."""
        for r in self.requirements:
            if r.field == field and not r.negated:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_unescaped(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if ch == "," and not escaped:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
        escaped = ch == "\\" and not escaped
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``fieldSelector`` query string (``=``, ``==``, ``!=``; ``\\`` escapes ``,=\\``).

    Empty text selects everything. Field names are not checked here; see
    ``field_selector_for_kind``. Raises SelectorError on syntax errors.
    """
    reqs = []
    for part in sorted(_split_unescaped(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        reqs.append(FieldRequirement(lhs, _unescape(rhs), negated=op == "!="))
    return FieldSelector(tuple(reqs))


def field_selector_for_kind(selector: FieldSelector, kind: str) -> FieldSelector:
    """Check every field against ``kind``'s table and apply aliases.

    Raises SelectorError worded as Kubernetes does: ``field label not supported: X`` for kinds
    with a table, ``"X" is not a known field selector: only "metadata.name",
    "metadata.namespace"`` for the rest.
    """
    table = SELECTABLE_FIELDS.get(kind)
    out = []
    for r in selector.requirements:
        field = _ALIASES.get((kind, r.field), r.field)
        if table is None and field not in _META:
            raise SelectorError(
                f'"{field}" is not a known field selector: only '
                '"metadata.name", "metadata.namespace"'
            )
        if table is not None and field not in table:
            raise SelectorError(f"field label not supported: {r.field}")
        out.append(FieldRequirement(field, r.value, r.negated))
    return FieldSelector(tuple(out))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return ""


def object_fields(kind: str, obj: Mapping[str, Any],
                  labels: Collection[str] | None = None) -> dict[str, str]:
    """The selectable fields of ``obj`` as strings, for ``FieldSelector.matches``; only
    ``labels`` when given (a selector needs only its own fields: a watch cache filtering
    30,000 pods should not read eleven fields of each to test one)."""
    fields: dict[str, str] = {}
    table = SELECTABLE_FIELDS.get(kind, _META)
    for label, path in table.items():
        if labels is not None and label not in labels:
            continue
        node: Any = obj
        for step in path:
            node = node.get(step) if isinstance(node, Mapping) else None
        fields[label] = _scalar(node) if node is not None else _ZERO_VALUES.get((kind, label), "")
    return fields
