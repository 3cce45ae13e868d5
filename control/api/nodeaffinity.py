"""Node selection by a pod: ``spec.nodeSelector`` and ``spec.affinity.nodeAffinity``.

The scheduler's NodeAffinity filter and score, its PodTopologySpread node-inclusion policy,
and the DaemonSet controller all ask the same questions: does this node satisfy the pod's
required node selection, and what weight of its preferred terms does it match.  Parsed once
per pod (or per equivalence class), matched many times.

Semantics are component-helpers ``nodeaffinity``: required terms are ORed, the expressions
and fields of one term are ANDed, a term with neither matches nothing; operators ``In``,
``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt`` (integer comparison; a label that is
not an integer never matches); ``matchFields`` supports ``metadata.name`` with ``In``/``NotIn``
and exactly one value.  A malformed term never matches, and its error is kept (``errors``) so
the caller can explain the failure instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from control.api.selectors import Operator, Requirement, SelectorError

__all__ = [
    "NodeSelectorTerm",
    "PreferredTerms",
    "RequiredNodeAffinity",
    "node_selector_terms",
    "parse_term",
]

Obj = Mapping[str, Any]

_LABEL_OPS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}


@dataclass(frozen=True)
class NodeSelectorTerm:
    """One parsed ``nodeSelectorTerm``: label requirements and ``(field, in?, value)``."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, bool, str], ...] = ()

    def matches(self, node_name: str, node_labels: Mapping[str, str]) -> bool:
        if not self.labels and not self.fields:
            return False
        for key, wanted_in, value in self.fields:
            have = node_name if key == "metadata.name" else ""
            if (have == value) != wanted_in:
                return False
        return all(r.matches(node_labels) for r in self.labels)


def parse_term(term: Any, path: str = "") -> NodeSelectorTerm:
    """Parse one ``nodeSelectorTerm``; raises SelectorError with a field path in the text."""
    if not isinstance(term, Mapping):
        raise SelectorError(f"{path}: Invalid value: must be an object")
    labels: list[Requirement] = []
    for i, expr in enumerate(_list(term.get("matchExpressions"), f"{path}.matchExpressions")):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            raise SelectorError(f"{where}: Invalid value: must be an object")
        op = _LABEL_OPS.get(str(expr.get("operator")))
        if op is None:
            raise SelectorError(f'{where}.operator: Unsupported value: "{expr.get("operator")}"')
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SelectorError(f"{where}.values: Invalid value: must be a list of strings")
        try:
            labels.append(Requirement.new(str(expr.get("key") or ""), op, values))
        except SelectorError as exc:
            raise SelectorError(f"{where}: {exc}") from None
    fields: list[tuple[str, bool, str]] = []
    for i, expr in enumerate(_list(term.get("matchFields"), f"{path}.matchFields")):
        where = f"{path}.matchFields[{i}]"
        if not isinstance(expr, Mapping):
            raise SelectorError(f"{where}: Invalid value: must be an object")
        values = expr.get("values") or []
        if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str):
            raise SelectorError(f"{where}.values: Invalid value: must have one element")
        operator = expr.get("operator")
        if operator not in ("In", "NotIn"):
            raise SelectorError(f'{where}.operator: Unsupported value: "{operator}": '
                                'supported values: "In", "NotIn"')
        fields.append((str(expr.get("key") or ""), operator == "In", values[0]))
    return NodeSelectorTerm(tuple(labels), tuple(fields))


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SelectorError(f"{path}: Invalid value: must be a list")
    return value


def node_selector_terms(selector: Any, path: str) -> tuple[list[NodeSelectorTerm], list[str]]:
    """The terms of a ``NodeSelector`` that parse, and an error text for each that does not."""
    terms: list[NodeSelectorTerm] = []
    errors: list[str] = []
    raw = selector.get("nodeSelectorTerms") if isinstance(selector, Mapping) else None
    if not isinstance(raw, list):
        return [], [f"{path}.nodeSelectorTerms: Invalid value: must be a list"]
    for i, term in enumerate(raw):
        try:
            terms.append(parse_term(term, f"{path}.nodeSelectorTerms[{i}]"))
        except SelectorError as exc:
            errors.append(str(exc))
    return terms, errors


@dataclass(frozen=True)
class RequiredNodeAffinity:
    """A pod's hard node selection: ``nodeSelector`` (every pair must be a node label) and the
    required node-affinity terms (any one must match, when there are terms at all).

    ``errors`` lists malformed parts; a malformed term never matches, and a malformed
    ``nodeSelector`` matches no node."""

    node_selector: tuple[tuple[str, str], ...] | None = None
    terms: tuple[NodeSelectorTerm, ...] | None = None
    errors: tuple[str, ...] = ()
    _always: bool = field(default=True, repr=False)

    @classmethod
    def of_pod(cls, pod: Obj) -> RequiredNodeAffinity:
        spec = pod.get("spec") or {}
        errors: list[str] = []
        selector: tuple[tuple[str, str], ...] | None = None
        raw_sel = spec.get("nodeSelector")
        if raw_sel is not None:
            if isinstance(raw_sel, Mapping) and all(isinstance(v, str) for v in raw_sel.values()):
                selector = tuple(sorted((str(k), v) for k, v in raw_sel.items()))
            else:
                errors.append("spec.nodeSelector: Invalid value: must map strings to strings")
                selector = (("", "\0"),)  # matches nothing
        terms: tuple[NodeSelectorTerm, ...] | None = None
        affinity = spec.get("affinity") or {}
        node_aff = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
        required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") \
            if isinstance(node_aff, Mapping) else None
        if required is not None:
            parsed, errs = node_selector_terms(
                required, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution")
            terms, errors = tuple(parsed), errors + errs
            if not parsed and errs:
                terms = ()
        always = selector is None and terms is None
        return cls(selector, terms, tuple(errors), always)

    @property
    def empty(self) -> bool:
        """True when the pod constrains nodes in no way (every node matches)."""
        return self._always

    def matches(self, node: Obj) -> bool:
        if self._always:
            return True
        meta = node.get("metadata") or {}
        labels = meta.get("labels") or {}
        if self.node_selector is not None:
            for key, value in self.node_selector:
                if labels.get(key) != value:
                    return False
        if self.terms is not None:
            name = meta.get("name") or ""
            return any(t.matches(name, labels) for t in self.terms)
        return True


@dataclass(frozen=True)
class PreferredTerms:
    """``preferredDuringSchedulingIgnoredDuringExecution`` node-affinity terms with weights;
    :meth:`score` is the sum of the weights of the terms a node matches (malformed terms are
    left out and listed in ``errors``)."""

    terms: tuple[tuple[int, NodeSelectorTerm], ...] = ()
    errors: tuple[str, ...] = ()

    @classmethod
    def of_pod(cls, pod: Obj) -> PreferredTerms:
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        node_aff = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
        raw = node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") \
            if isinstance(node_aff, Mapping) else None
        if not raw:
            return cls()
        if not isinstance(raw, Sequence):
            return cls((), ("spec.affinity.nodeAffinity.preferred...: must be a list",))
        terms: list[tuple[int, NodeSelectorTerm]] = []
        errors: list[str] = []
        for i, item in enumerate(raw):
            path = f"spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            weight = item.get("weight") if isinstance(item, Mapping) else None
            if not isinstance(weight, int) or isinstance(weight, bool) or weight == 0:
                errors.append(f"{path}.weight: Invalid value: {weight!r}: must be in 1-100")
                continue
            try:
                terms.append((weight, parse_term(item.get("preference"), f"{path}.preference")))
            except SelectorError as exc:
                errors.append(str(exc))
        return cls(tuple(terms), tuple(errors))

    def score(self, node: Obj) -> int:
        if not self.terms:
            return 0
        meta = node.get("metadata") or {}
        name, labels = meta.get("name") or "", meta.get("labels") or {}
        return sum(w for w, t in self.terms if t.matches(name, labels))
