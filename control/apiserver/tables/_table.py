"""Assemble a meta.k8s.io/v1 Table from objects of one kind, using the kind's printer."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from control.apiserver.tables import core, events, network, pods, policy, rbac, workloads
from control.apiserver.tables._columns import CREATED, Printer

# Kind -> printer; a kind without an entry gets Name and Created At, as kube's default.
PRINTERS: dict[str, Printer] = {
    **pods.PRINTERS,
    **core.PRINTERS,
    **network.PRINTERS,
    **workloads.PRINTERS,
    **events.PRINTERS,
    **rbac.PRINTERS,
    **policy.PRINTERS,
}

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def _row_object(obj: Mapping[str, Any], include_object: str) -> Any:
    if include_object == "Object":
        return obj
    metadata = obj.get("metadata")
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(metadata) if isinstance(metadata, Mapping) else {},
    }


def table_for(
    kind: str,
    objects: list[dict[str, Any]],
    *,
    list_meta: dict[str, Any] | None = None,
    include_object: str = "Metadata",
    now: datetime.datetime,
) -> dict[str, Any]:
    """The Table kube-apiserver would return for ``objects`` (all of ``kind``) at time ``now``.

    Rows keep the order of ``objects``; each has one cell per column definition, priority-1
    columns included. ``include_object`` (the ``includeObject`` query parameter) selects the
    row's ``object``: "Metadata" a PartialObjectMetadata with a shallow copy of the object's
    metadata, "Object" the object itself (shared, not copied: the caller must not mutate it
    afterwards), "None" no ``object`` key. ``now`` is used for every Age; a naive datetime is
    taken as UTC. Missing or malformed fields print as kube prints them ("<none>", 0,
    "<unknown>"); only an unknown ``include_object`` raises (ValueError, a 400 for the client).
    """
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(
            f"includeObject must be one of None, Metadata, Object; got {include_object!r}"
        )
    printer = PRINTERS.get(kind, CREATED)
    rows = []
    for obj in objects:
        item: Mapping[str, Any] = obj if isinstance(obj, Mapping) else {}
        row: dict[str, Any] = {"cells": printer.cells(item, now)}
        if include_object != "None":
            row["object"] = _row_object(item, include_object)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [column.definition() for column in printer.columns],
        "rows": rows,
    }
