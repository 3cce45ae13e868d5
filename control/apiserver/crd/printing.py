"""Table printing of custom resources: the CRD version's ``additionalPrinterColumns``
(apiextensions ``tableconvertor``), or NAME and AGE when it declares none.

Column values are found with the JSONPath subset kubectl's templates use: ``.a.b``,
``['a.b']``, ``[0]``, ``[*]`` and filters ``[?(@.type=="Ready")]`` (``==``/``!=``); the first
result is printed by the column's type (a date as an age, a string column prints lists and
maps as JSON).  Pure.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control.apiserver.tables._fields import human_duration, parse_time

__all__ = ["PrinterColumn", "custom_table", "find", "parse_json_path"]

Step = tuple[str, Any]
_TOKEN = re.compile(r"""\.([A-Za-z0-9_$-]+)|\[(\d+|\*|'[^']*'|"[^"]*"|\?\(@(\.[^=!]+)\s*(==|!=)"""
                    r"""\s*("[^"]*"|'[^']*'|[^)]*)\))\]|\.?\[\*\]""")


def parse_json_path(text: str) -> tuple[Step, ...]:
    """Steps of a simple JSONPath (``{}`` around it allowed); ValueError if it is not one."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not text.startswith((".", "[")):
        raise ValueError(f"unrecognized character in action: {text[:1]!r}")
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unrecognized identifier {text[pos:]}")
        if m.group(1) is not None:
            steps.append(("key", m.group(1)))
        elif m.group(2) is not None:
            inner = m.group(2)
            if inner == "*":
                steps.append(("all", None))
            elif inner.isdigit():
                steps.append(("index", int(inner)))
            elif inner[0] in "'\"":
                steps.append(("key", inner[1:-1]))
            else:
                path = tuple(p for p in (m.group(3) or "").strip().split(".") if p)
                value = (m.group(5) or "").strip()
                literal: Any = value[1:-1] if value[:1] in "'\"" else _number(value)
                steps.append(("filter", (path, m.group(4), literal)))
        else:
            steps.append(("all", None))
        pos = m.end()
    return tuple(steps)


def _number(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def find(obj: Any, steps: Sequence[Step]) -> list[Any]:
    """Every value ``steps`` reach in ``obj`` (missing keys reach nothing)."""
    current = [obj]
    for kind, arg in steps:
        nxt: list[Any] = []
        for value in current:
            if kind == "key" and isinstance(value, Mapping) and arg in value or kind == "index" and isinstance(value, list) and -len(value) <= arg < len(value):
                nxt.append(value[arg])
            elif kind == "all":
                nxt.extend(value if isinstance(value, list) else
                           value.values() if isinstance(value, Mapping) else ())
            elif kind == "filter" and isinstance(value, list):
                path, op, literal = arg
                for item in value:
                    found = find(item, [("key", p) for p in path])
                    hit = bool(found) and found[0] == literal
                    if hit == (op == "=="):
                        nxt.append(item)
        current = nxt
    return current


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    steps: tuple[Step, ...]
    description: str = ""
    format: str = ""
    priority: int = 0

    @classmethod
    def of(cls, col: Mapping[str, Any]) -> PrinterColumn:
        path = str(col.get("jsonPath") or "")
        return cls(str(col.get("name") or ""), str(col.get("type") or "string"), path,
                   parse_json_path(path), str(col.get("description") or ""),
                   str(col.get("format") or ""), int(col.get("priority") or 0))

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description or "Custom resource definition column (in "
                f"JSONPath format): {self.json_path}", "priority": self.priority}

    def cell(self, obj: Any, now: datetime.datetime) -> Any:
        found = find(obj, self.steps)
        if not found or found[0] is None:
            return None
        value = found[0]
        if self.type == "string":
            return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if self.type == "integer" and isinstance(value, int | float) \
                and not isinstance(value, bool):
            return int(value)
        if self.type == "number" and isinstance(value, int | float) \
                and not isinstance(value, bool):
            return float(value)
        if self.type == "boolean" and isinstance(value, bool):
            return value
        if self.type == "date" and isinstance(value, str):
            then = parse_time(value)
            if then is None:
                return "<invalid>"
            moment = now if now.tzinfo else now.replace(tzinfo=datetime.UTC)
            return human_duration((moment - then).total_seconds())
        return None


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp",
                    parse_json_path(".metadata.creationTimestamp"))
_NAME = {"name": "Name", "type": "string", "format": "name",
         "description": "Name must be unique within a namespace. Is required when creating "
                        "resources, although some resources may allow a client to request the "
                        "generation of an appropriate name automatically. Name is primarily "
                        "intended for creation idempotence and configuration definition. "
                        "Cannot be updated. More info: https://kubernetes.io/docs/concepts/"
                        "overview/working-with-objects/names#names", "priority": 0}


def custom_table(columns: Sequence[PrinterColumn], objects: list[dict[str, Any]], *,
                 list_meta: dict[str, Any] | None, include_object: str,
                 now: datetime.datetime) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of custom objects (``include_object`` as in
    :func:`control.apiserver.tables.table_for`; ValueError for an unknown one)."""
    if include_object not in ("None", "Metadata", "Object"):
        raise ValueError(
            f"includeObject must be one of None, Metadata, Object; got {include_object!r}")
    cols = list(columns) or [AGE]
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        row: dict[str, Any] = {"cells": [meta.get("name", "")] + [c.cell(obj, now)
                                                                  for c in cols]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": dict(meta)}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": [dict(_NAME)] + [c.definition() for c in cols], "rows": rows}
