"""Field selectors on custom resources: ``metadata.name``, ``metadata.namespace`` and the
version's ``selectableFields`` (by JSONPath, as kube-apiserver's CR field sets).  Built-ins
keep :func:`control.apiserver.reads.make_filter`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.api.catalog import ResourceDef
from control.api.errors import BadRequest
from control.api.fieldselectors import FieldRequirement, FieldSelector, parse_field_selector
from control.api.selectors import SelectorError, parse_label_selector
from control.apiserver.reads import Filter, make_filter
from control.apiserver.requestinfo import QueryOptions

from .resource import CustomResourceDef

__all__ = ["CustomFilter", "filter_for"]


@dataclass(frozen=True)
class CustomFilter(Filter):
    """A :class:`Filter` whose fields come from a CRD version's selectable fields."""

    rd: CustomResourceDef | None = None

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if not self.labels.empty and not self.labels.matches(meta.get("labels") or {}):
            return False
        return self.fields.empty or self.rd is None or self.fields.matches(
            self.rd.fields_of(obj))


def filter_for(rd: ResourceDef, opts: QueryOptions) -> Filter:
    """The selectors of a list or watch of ``rd``; 400 with the parser's message if bad."""
    if not isinstance(rd, CustomResourceDef):
        return make_filter(rd, opts)
    allowed = ["metadata.name", "metadata.namespace", *(p.lstrip(".") for p in rd.selectable)]
    try:
        labels = parse_label_selector(opts.label_selector)
        fields = parse_field_selector(opts.field_selector)
    except SelectorError as e:
        raise BadRequest(str(e)) from None
    for r in fields.requirements:
        if r.field not in allowed:
            shown = ", ".join(f'"{a}"' for a in allowed)
            raise BadRequest(f'"{r.field}" is not a known field selector: only {shown}')
    reqs = tuple(FieldRequirement(r.field, r.value, r.negated) for r in fields.requirements)
    return CustomFilter(rd.kind, labels, FieldSelector(reqs), rd)
