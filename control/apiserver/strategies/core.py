"""Core kinds with little spec: namespaces, nodes, service accounts, endpoints, events and
leases (coordination.k8s.io).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause
from control.apiserver.timestamps import format_timestamp

from .base import BaseStrategy, metadata_of
from .causes import child, duplicate, forbidden, index, invalid, mappings, one_of, required
from .containers import validate_port_number
from .names import qualified_name

__all__ = [
    "NAMESPACE_NAME_LABEL",
    "EndpointsStrategy",
    "EventStrategy",
    "LeaseStrategy",
    "NamespaceStrategy",
    "NodeStrategy",
    "PlainStrategy",
]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_STANDARD_FINALIZERS = ("kubernetes",)
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_PROTOCOLS = ("SCTP", "TCP", "UDP")


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


class PlainStrategy(BaseStrategy):
    """Object meta only: kinds with no rules of their own (ServiceAccounts)."""


class NamespaceStrategy(BaseStrategy):
    """Namespaces: DNS-1123 label names, labelled with their own name, phase Active on
    create, and ``spec.finalizers`` (``["kubernetes"]`` on create) changed only through the
    ``finalize`` subresource (:meth:`prepare_for_finalize`)."""

    name_rule = "label"

    def default(self, obj: dict[str, Any]) -> None:
        meta = metadata_of(obj)
        if meta.get("name"):
            labels = meta.setdefault("labels", {})
            if isinstance(labels, dict):
                labels[NAMESPACE_NAME_LABEL] = meta["name"]

    def initial_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {"phase": "Active"}

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        spec = obj.setdefault("spec", {})
        finalizers = spec.setdefault("finalizers", [])
        if isinstance(finalizers, list) and "kubernetes" not in finalizers:
            finalizers.append("kubernetes")

    def carry_over(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        new["spec"] = copy.deepcopy(old.get("spec") or {})

    def prepare_for_finalize(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        """``namespaces/<name>/finalize``: an update whose ``spec.finalizers`` is taken from
        ``new`` (a plain update keeps ``old``'s); status stays ``old``'s."""
        finalizers = copy.deepcopy(_spec(new).get("finalizers") or [])
        self.prepare_for_update(new, old)
        new.setdefault("spec", {})["finalizers"] = finalizers

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        errs: list[Cause] = []
        for value in _spec(obj).get("finalizers") or []:
            text = str(value)
            problems = qualified_name(text)
            if not problems and "/" not in text and text not in _STANDARD_FINALIZERS:
                problems = ["name is neither a standard finalizer name nor is it fully qualified"]
            errs += [invalid("spec.finalizers", text, msg) for msg in problems]
        return errs


class NodeStrategy(BaseStrategy):
    """Nodes: kubelets create them with status, so status is kept on create; podCIDR and
    providerID may only be set once."""

    keep_status_on_create = True

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec = _spec(obj)
        errs: list[Cause] = []
        seen: set[tuple[str, str]] = set()
        for i, taint in enumerate(mappings(spec.get("taints"))):
            p = index("spec.taints", i)
            k, effect = str(taint.get("key") or ""), str(taint.get("effect") or "")
            if not k:
                errs.append(required(child(p, "key")))
            errs += [invalid(child(p, "key"), k, msg) for msg in (qualified_name(k) if k else [])]
            errs += one_of(effect, child(p, "effect"), _TAINT_EFFECTS)
            if (k, effect) in seen:
                errs.append(duplicate(p, f"{k}:{effect}"))
            seen.add((k, effect))
        for i, cidr in enumerate(spec.get("podCIDRs") or []):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                errs.append(invalid(index("spec.podCIDRs", i), cidr,
                                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                                    "2001:db8::/64)"))
        return errs

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        errs: list[Cause] = []
        for f, word in (("podCIDR", "podCIDR"), ("providerID", "providerID")):
            before = _spec(old).get(f)
            if before and _spec(new).get(f) != before:
                errs.append(forbidden(child("spec", f), f"node updates may not change {word} "
                                      'except from "" to valid'))
        return errs


class EndpointsStrategy(BaseStrategy):
    """Endpoints: addresses are IPs, ports valid (protocol defaults to TCP)."""

    def default(self, obj: dict[str, Any]) -> None:
        for subset in obj.get("subsets") or []:
            for port in (subset.get("ports") or []) if isinstance(subset, dict) else []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        errs: list[Cause] = []
        for i, subset in enumerate(mappings(obj.get("subsets"))):
            base = index("subsets", i)
            for group in ("addresses", "notReadyAddresses"):
                for j, address in enumerate(mappings(subset.get(group))):
                    errs += _validate_ip(address.get("ip"), child(index(child(base, group), j),
                                                                  "ip"))
            ports = mappings(subset.get("ports"))
            for j, port in enumerate(ports):
                p = index(child(base, "ports"), j)
                if len(ports) > 1 and not port.get("name"):
                    errs.append(required(child(p, "name")))
                errs += validate_port_number(port.get("port"), child(p, "port"))
                errs += one_of(port.get("protocol"), child(p, "protocol"), _PROTOCOLS)
        return errs


def _validate_ip(value: Any, field: str) -> list[Cause]:
    if not value:
        return [required(field)]
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [invalid(field, value,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


_EVENT_TIMES = (("firstTimestamp", False), ("lastTimestamp", False), ("eventTime", True))


def _normalize_event_times(obj: dict[str, Any]) -> None:
    for name, micro in _EVENT_TIMES:
        if isinstance(obj.get(name), str) and obj[name]:
            obj[name] = format_timestamp(obj[name], micro, name)
    series = obj.get("series")
    if isinstance(series, dict) and isinstance(series.get("lastObservedTime"), str) \
            and series["lastObservedTime"]:
        series["lastObservedTime"] = format_timestamp(series["lastObservedTime"], True,
                                                      "series.lastObservedTime")


class EventStrategy(BaseStrategy):
    """core/v1 Events: the involved object's namespace must be the event's (an event about
    a cluster-scoped object lives in ``default`` or nowhere); timestamps stored as Go writes
    them (UTC; seconds, or microseconds for eventTime and series.lastObservedTime)."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        _normalize_event_times(obj)

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        _normalize_event_times(new)

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        involved = obj.get("involvedObject")
        involved = involved if isinstance(involved, Mapping) else {}
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        theirs = involved.get("namespace") or ""
        ok = namespace in ("", "default") if not theirs else namespace == theirs
        if ok:
            return []
        return [invalid("involvedObject.namespace", theirs, "does not match event.namespace")]


class LeaseStrategy(BaseStrategy):
    """coordination.k8s.io Leases: a positive duration, non-negative transitions."""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec = _spec(obj)
        errs: list[Cause] = []
        duration, transitions = spec.get("leaseDurationSeconds"), spec.get("leaseTransitions")
        if duration is not None and (not isinstance(duration, int) or duration <= 0):
            errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
            errs.append(invalid("spec.leaseTransitions", transitions,
                                "must be greater than or equal to 0"))
        return errs
