"""Reading API objects as JSON dicts: the small accessors every component uses, written once."""

from __future__ import annotations

from typing import Any

from .selectors import LabelSelector, SelectorError, from_label_selector

__all__ = ["NODE_LEASE_RENEW_ANNOTATION", "NODE_TTL_ANNOTATION", "meta",
           "node_lease_renew_seconds", "node_ttl_seconds", "spec_selector"]

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


#: How long a node agent keeps the ConfigMaps and Secrets it read; set on every Node by the
#: controller-manager's ttl controller (Kubernetes' name).
NODE_TTL_ANNOTATION = "node.alpha.kubernetes.io/ttl"


def node_ttl_seconds(node: Obj | None) -> int | None:
    """The Node's TTL annotation as whole seconds; None when absent or not a number (as the
    kubelet, which then keeps its default)."""
    return _whole_seconds(node, NODE_TTL_ANNOTATION)


#: The least interval at which a node agent renews its Lease, set on every Node by the ttl
#: controller as the cluster grows (Nomad's heartbeat-rate cap; ketch's own annotation).
NODE_LEASE_RENEW_ANNOTATION = "node.ketch.io/lease-renew-seconds"


def node_lease_renew_seconds(node: Obj | None) -> int | None:
    """The Node's least Lease renewal interval in whole seconds; None when absent or not a
    positive number (the agent then keeps its own)."""
    seconds = _whole_seconds(node, NODE_LEASE_RENEW_ANNOTATION)
    return seconds if seconds is not None and seconds > 0 else None


def _whole_seconds(node: Obj | None, annotation: str) -> int | None:
    """A Node annotation read as whole seconds; None when absent or not a number."""
    value = (meta(node).get("annotations") or {}).get(annotation)
    try:
        return int(value) if isinstance(value, str) else None
    except ValueError:
        return None
