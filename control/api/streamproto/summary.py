"""The node agent's resource-usage summary (``GET /stats/summary`` on its streaming server): the
agent writes it, the apiserver reads it to serve ``metrics.k8s.io`` (metrics-server's job).

The shape is the subset of kubelet's Summary API (``stats/v1alpha1``) that metrics need, plus one
ketch field, ``windowSeconds``: the interval the CPU rates were measured over::

    {"node": {"nodeName": "n1",
              "cpu": {"time": "2026-01-01T00:00:10Z", "usageNanoCores": 250000000,
                      "usageCoreNanoSeconds": 9000000000},
              "memory": {"time": "2026-01-01T00:00:10Z", "workingSetBytes": 1610612736}},
     "pods": [{"podRef": {"name": "x", "namespace": "default", "uid": "…"},
               "cpu": {…}, "memory": {…},
               "containers": [{"name": "c", "cpu": {…}, "memory": {…}}]}],
     "windowSeconds": 10.0}

``usageNanoCores`` is absent until two samples exist (as kubelet leaves it out); a reader treats
such an entry as "no metrics yet".  :func:`from_json` trusts nothing in the document.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from control.api.clock import format_time, parse_time

__all__ = ["ContainerStats", "PodStats", "Summary", "SummaryError", "Usage", "from_json",
           "to_json"]


class SummaryError(ValueError):
    """A summary document that does not have the shape above."""


@dataclass(frozen=True)
class Usage:
    """CPU and memory of one container, pod or node at one instant.  ``cpu_nano_cores`` is the
    rate over the window (None before there are two samples); the other two are readings."""

    cpu_core_nanoseconds: int
    memory_working_set_bytes: int
    cpu_nano_cores: int | None = None


@dataclass(frozen=True)
class ContainerStats:
    name: str
    usage: Usage


@dataclass(frozen=True)
class PodStats:
    namespace: str
    name: str
    uid: str
    containers: tuple[ContainerStats, ...] = ()

    @property
    def usage(self) -> Usage:
        """The pod's total: the sum of its containers (a rate only if every one has one)."""
        rates = [c.usage.cpu_nano_cores for c in self.containers]
        return Usage(sum(c.usage.cpu_core_nanoseconds for c in self.containers),
                     sum(c.usage.memory_working_set_bytes for c in self.containers),
                     None if any(r is None for r in rates) else sum(r or 0 for r in rates))


@dataclass(frozen=True)
class Summary:
    node_name: str
    time: dt.datetime
    window_seconds: float
    node: Usage
    pods: tuple[PodStats, ...] = ()


def _usage_json(usage: Usage, when: str) -> dict[str, Any]:
    cpu: dict[str, Any] = {"time": when, "usageCoreNanoSeconds": usage.cpu_core_nanoseconds}
    if usage.cpu_nano_cores is not None:
        cpu["usageNanoCores"] = usage.cpu_nano_cores
    return {"cpu": cpu, "memory": {"time": when,
                                   "workingSetBytes": usage.memory_working_set_bytes}}


def to_json(summary: Summary) -> dict[str, Any]:
    """The document the agent serves."""
    when = format_time(summary.time, micro=True)
    pods = []
    for p in summary.pods:
        pods.append({"podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                     **_usage_json(p.usage, when),
                     "containers": [{"name": c.name, **_usage_json(c.usage, when)}
                                    for c in p.containers]})
    return {"node": {"nodeName": summary.node_name, **_usage_json(summary.node, when)},
            "pods": pods, "windowSeconds": summary.window_seconds}


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SummaryError(f"{what} must be an object")
    return value


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SummaryError(f"{what} must be a non-negative integer, not {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SummaryError(f"{what} must be a string")
    return value


def _usage(doc: dict[str, Any], what: str) -> Usage:
    cpu = _obj(doc.get("cpu"), f"{what}.cpu")
    memory = _obj(doc.get("memory"), f"{what}.memory")
    rate = cpu.get("usageNanoCores")
    return Usage(_int(cpu.get("usageCoreNanoSeconds", 0), f"{what}.cpu.usageCoreNanoSeconds"),
                 _int(memory.get("workingSetBytes", 0), f"{what}.memory.workingSetBytes"),
                 None if rate is None else _int(rate, f"{what}.cpu.usageNanoCores"))


def from_json(doc: Any) -> Summary:
    """A summary from an agent's answer; SummaryError for anything not of the shape above."""
    top = _obj(doc, "summary")
    node = _obj(top.get("node"), "node")
    window = top.get("windowSeconds", 0)
    if not isinstance(window, int | float) or isinstance(window, bool) or window < 0:
        raise SummaryError("windowSeconds must be a non-negative number")
    cpu = _obj(node.get("cpu"), "node.cpu")
    when = parse_time(_str(cpu.get("time"), "node.cpu.time"))
    if when is None:
        raise SummaryError("node.cpu.time must be an RFC 3339 time")
    pods = []
    raw_pods = top.get("pods")
    raw_pods = [] if raw_pods is None else raw_pods
    if not isinstance(raw_pods, list):
        raise SummaryError("pods must be a list")
    for i, p in enumerate(raw_pods):
        p = _obj(p, f"pods[{i}]")
        ref = _obj(p.get("podRef"), f"pods[{i}].podRef")
        containers = []
        raw_containers = p.get("containers")
        raw_containers = [] if raw_containers is None else raw_containers
        if not isinstance(raw_containers, list):
            raise SummaryError(f"pods[{i}].containers must be a list")
        for j, c in enumerate(raw_containers):
            c = _obj(c, f"pods[{i}].containers[{j}]")
            containers.append(ContainerStats(_str(c.get("name"), "container name"),
                                             _usage(c, f"pods[{i}].containers[{j}]")))
        pods.append(PodStats(_str(ref.get("namespace"), "podRef.namespace"),
                             _str(ref.get("name"), "podRef.name"),
                             _str(ref.get("uid", ""), "podRef.uid"), tuple(containers)))
    return Summary(_str(node.get("nodeName"), "node.nodeName"), when, float(window),
                   _usage(node, "node"), tuple(pods))
