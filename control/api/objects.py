"""Reading API objects as JSON dicts: the small accessors every component uses, written once."""

from __future__ import annotations

from typing import Any

from .selectors import LabelSelector, SelectorError, from_label_selector

__all__ = ["meta", "spec_selector"]

Obj = dict[str, Any]


def meta(obj: Obj | None) -> Obj:
    """``obj.metadata`` (``{}`` when absent; for reading only)."""
    found: Obj = (obj or {}).get("metadata") or {}
    return found


def spec_selector(obj: Obj) -> LabelSelector | None:
    """``spec.selector`` as a LabelSelector; None when it is malformed."""
    try:
        return from_label_selector((obj.get("spec") or {}).get("selector"))
    except SelectorError:
        return None
