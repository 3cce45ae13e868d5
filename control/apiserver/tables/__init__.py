"""Server-side Table printing: what ``kubectl get`` shows for each kind.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io``; the apiserver lists or
gets the objects as usual and hands them to :func:`table_for`, which lays them out in the
columns kube-apiserver uses for the kind (Name and Created At for kinds it does not know).
Pure: no I/O, the current time is passed in.

Printers live per API group area (``pods``, ``core``, ``network``, ``workloads``, ``events``,
``rbac``, ``policy``); each module exports a ``PRINTERS`` mapping from kind to :class:`Printer`.
"""

from __future__ import annotations

from control.apiserver.tables._columns import Column, Printer
from control.apiserver.tables._fields import human_duration
from control.apiserver.tables._table import INCLUDE_OBJECT, PRINTERS, table_for

__all__ = ["INCLUDE_OBJECT", "PRINTERS", "Column", "Printer", "human_duration", "table_for"]
