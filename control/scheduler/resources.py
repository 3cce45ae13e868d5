"""Pod requests and node allocatable as plain integers, computed once per pod template and
once per node update, so the hot path compares ints (kube-scheduler's ``framework.Resource``).

cpu is in millicores (``MilliValue``, rounded up), memory, ephemeral-storage and extended
resources in whole units (``Value``, rounded up).  Pod totals come from
:func:`control.api.podresources.pod_requests` (app containers and sidecars summed, init
containers at their peak, ``spec.overhead`` added), as NodeResourcesFit computes them.  The
non-zero requests used for scoring put 100m cpu / 200Mi memory in for a container that asks
for none (``NonMissingContainerRequests``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.api.podresources import pod_requests
from control.api.quantity import Quantity, QuantityError

__all__ = ["DEFAULT_CPU_MILLI", "DEFAULT_MEMORY", "Allocatable", "Requests", "is_scalar"]

log = logging.getLogger(__name__)

DEFAULT_CPU_MILLI = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
_NONZERO = {"cpu": Quantity.parse("100m"), "memory": Quantity.parse("200Mi")}
_NATIVE = ("cpu", "memory", "ephemeral-storage", "pods")


def is_scalar(name: str) -> bool:
    """Extended (``example.com/gpu``), hugepages and attachable-volume resources: the ones
    beyond cpu/memory/ephemeral-storage/pods that the fit filter also checks."""
    return name.startswith(("hugepages-", "attachable-volumes-")) or "/" in name


def _whole(q: Quantity) -> int:
    return math.ceil(q.value)


@dataclass(frozen=True)
class Requests:
    """A pod's requests: ``cpu`` milli, ``memory``/``ephemeral`` bytes, ``scalars`` by name;
    ``nz_cpu``/``nz_memory`` the non-zero variants for the allocation scores."""

    cpu: int = 0
    memory: int = 0
    ephemeral: int = 0
    scalars: tuple[tuple[str, int], ...] = ()
    nz_cpu: int = DEFAULT_CPU_MILLI
    nz_memory: int = DEFAULT_MEMORY

    @property
    def zero(self) -> bool:
        return not (self.cpu or self.memory or self.ephemeral or self.scalars)

    @classmethod
    def of_pod(cls, pod: Mapping[str, Any]) -> Requests:
        """Raises QuantityError for a malformed quantity."""
        total = pod_requests(pod, overhead=True)
        nonzero = pod_requests(pod, overhead=True, defaults=_NONZERO)
        scalars = tuple(sorted((k, _whole(q)) for k, q in total.items()
                               if k not in _NATIVE and is_scalar(k) and q.value > 0))
        return cls(
            cpu=total["cpu"].milli() if "cpu" in total else 0,
            memory=_whole(total["memory"]) if "memory" in total else 0,
            ephemeral=_whole(total["ephemeral-storage"]) if "ephemeral-storage" in total else 0,
            scalars=scalars,
            nz_cpu=nonzero["cpu"].milli() if "cpu" in nonzero else 0,
            nz_memory=_whole(nonzero["memory"]) if "memory" in nonzero else 0,
        )


@dataclass(frozen=True)
class Allocatable:
    """What a node offers (``status.allocatable``).  ``problems`` lists what was missing or
    malformed; such a resource counts as zero, so nothing that needs it fits."""

    cpu: int = 0
    memory: int = 0
    ephemeral: int = 0
    pods: int = 0
    scalars: Mapping[str, int] | None = None
    problems: tuple[str, ...] = ()

    def scalar(self, name: str) -> int:
        return (self.scalars or {}).get(name, 0)

    @classmethod
    def of_node(cls, node: Mapping[str, Any]) -> Allocatable:
        status = node.get("status") or {}
        raw = status.get("allocatable") if isinstance(status, Mapping) else None
        name = (node.get("metadata") or {}).get("name", "?")
        if not isinstance(raw, Mapping) or not raw:
            log.warning("node %s has no status.allocatable; treating it as full", name)
            return cls(problems=("status.allocatable is missing",))
        values: dict[str, int] = {}
        problems: list[str] = []
        for key, text in raw.items():
            try:
                q = Quantity.parse(text)
            except QuantityError:
                problems.append(f"status.allocatable[{key}]: malformed quantity {text!r}")
                continue
            if q.value < 0:
                problems.append(f"status.allocatable[{key}]: negative quantity {text!r}")
                continue
            values[str(key)] = q.milli() if key == "cpu" else _whole(q)
        for key in ("cpu", "memory", "pods"):
            if key not in values and not any(p.startswith(f"status.allocatable[{key}]")
                                             for p in problems):
                problems.append(f"status.allocatable[{key}] is missing")
        if problems:
            log.warning("node %s: %s; those resources count as zero", name, "; ".join(problems))
        return cls(
            cpu=values.get("cpu", 0), memory=values.get("memory", 0),
            ephemeral=values.get("ephemeral-storage", 0), pods=values.get("pods", 0),
            scalars={k: v for k, v in values.items() if k not in _NATIVE and is_scalar(k)},
            problems=tuple(problems),
        )
