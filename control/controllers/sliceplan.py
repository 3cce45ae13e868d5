"""The EndpointSlice reconciler's pure core: from a Service, its pods, the nodes and the slices
this controller already manages for it, the slices to create, update and delete (kubernetes
``staging/src/k8s.io/endpointslice/reconciler.go``).

Endpoints are grouped by the ports they resolve to (a named ``targetPort`` may mean different
numbers on different pods).  Existing slices keep the endpoints still wanted (updated in
place when their conditions, node or zone changed); the slices changed anyway are filled up
first, then leftovers go into the unchanged slice that ends closest to full, then into new
slices of at most ``max_per_slice``.  A Service with no endpoints keeps one empty placeholder
slice per address type.  Creations that would meet deletions become updates of the slices
that would otherwise be deleted, so a churning Service does not churn slice names.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from control.api.objects import meta as _meta

from .endpointutil import (
    HEADLESS_LABEL,
    find_port,
    is_service_ip_set,
    pod_ips,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)
from .owners import controller_ref
from .podutil import is_pod_ready

__all__ = [
    "CONTROLLER_NAME", "MANAGED_BY_LABEL", "MAX_ENDPOINTS_PER_SLICE", "SERVICE_NAME_LABEL",
    "SlicePlan", "address_types", "plan_slices", "slice_labels",
]

Obj = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
ZONE_LABEL = "topology.kubernetes.io/zone"
_RESERVED = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    #: Pods left out for now (their node is not known yet): retry the Service later.
    problems: list[str] = field(default_factory=list)



def address_types(svc: Obj) -> list[str]:
    """The slice address types a Service wants (from ``ipFamilies``, else its cluster IP)."""
    spec = svc.get("spec") or {}
    fams = [f"IPv{f[-1]}" for f in spec.get("ipFamilies") or () if f in ("IPv4", "IPv6")]
    if fams:
        return list(dict.fromkeys(fams))
    ip = spec.get("clusterIP") or ""
    if ip and ip != "None":
        try:
            return ["IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"]
        except ValueError:
            return ["IPv4"]
    return ["IPv4", "IPv6"]


def slice_labels(existing: Obj | None, svc: Obj, controller: str = CONTROLLER_NAME
                 ) -> tuple[Obj, bool]:
    """The labels a slice of ``svc`` carries (the Service's own, minus the reserved ones, plus
    service-name, managed-by and headless), and whether the non-reserved ones differ from the
    slice's now."""
    mine = {k: v for k, v in (_meta(existing or {}).get("labels") or {}).items()
            if k not in _RESERVED}
    theirs = {k: v for k, v in (_meta(svc).get("labels") or {}).items() if k not in _RESERVED}
    changed = mine != theirs
    labels = dict(theirs)
    if not is_service_ip_set(svc):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = _meta(svc).get("name", "")
    labels[MANAGED_BY_LABEL] = controller
    return labels, changed


def _endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    spec = svc.get("spec") or {}
    out = []
    for sp in spec.get("ports") or ():
        number = find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "port": number,
                     "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def _port_key(ports: list[Obj]) -> str:
    return json.dumps(sorted(json.dumps(p, sort_keys=True) for p in ports))


def _family_ips(pod: Obj, address_type: str) -> list[str]:
    version = 6 if address_type == "IPv6" else 4
    return [ip for ip in pod_ips(pod) if ipaddress.ip_address(ip).version == version]


def pod_to_endpoint(pod: Obj, node: Obj | None, svc: Obj, address_type: str) -> Obj:
    """One slice endpoint: ready (never while terminating, unless the Service publishes
    not-ready addresses), serving (the pod's readiness), terminating; node, zone, hostname."""
    serving = is_pod_ready(pod)
    terminating = bool(_meta(pod).get("deletionTimestamp"))
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: Obj = {"addresses": _family_ips(pod, address_type),
               "conditions": {"ready": publish or (serving and not terminating),
                              "serving": serving, "terminating": terminating},
               "targetRef": target_ref(pod)}
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = (_meta(node or {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        ep["zone"] = zone
    if should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def _ep_hash(ep: Obj) -> tuple[Any, ...]:
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(ep.get("addresses") or ())), ep.get("hostname") or "",
            ref.get("namespace", ""), ref.get("name", ""))


def _ep_same(a: Obj, b: Obj) -> bool:
    """Equal beyond the hash (node, zone, conditions, target ignoring its resourceVersion)."""
    def view(ep: Obj) -> tuple[Any, ...]:
        ref = {k: v for k, v in (ep.get("targetRef") or {}).items() if k != "resourceVersion"}
        cond = ep.get("conditions") or {}
        return (ep.get("nodeName"), ep.get("zone"), cond.get("ready"), cond.get("serving"),
                cond.get("terminating"), json.dumps(ref, sort_keys=True))
    return view(a) == view(b)


def _owned_by(slice_: Obj, svc: Obj) -> bool:
    uid = _meta(svc).get("uid")
    return any(r.get("uid") == uid and r.get("kind") == "Service" and r.get("apiVersion") == "v1"
               for r in _meta(slice_).get("ownerReferences") or ())


def _prefix(name: str) -> str:
    return f"{name}-" if len(name) < 253 else name


def new_slice(svc: Obj, ports: list[Obj], address_type: str, controller: str) -> Obj:
    meta = _meta(svc)
    owner = controller_ref({"apiVersion": "v1", "kind": "Service", "metadata": meta})
    labels, _ = slice_labels(None, svc, controller)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": _prefix(meta.get("name", "")),
                         "namespace": meta.get("namespace", ""), "labels": labels,
                         "ownerReferences": [owner]},
            "addressType": address_type, "ports": ports, "endpoints": []}


def plan_slices(svc: Obj, pods: list[Obj], node: Callable[[str], Obj | None],
                existing: list[Obj], *, max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
                controller: str = CONTROLLER_NAME) -> SlicePlan:
    """Creates, updates and deletes that make ``existing`` (this controller's slices for the
    Service, none being deleted) represent ``pods``.  Nothing passed in is changed."""
    plan = SlicePlan()
    wanted = address_types(svc)
    by_type: dict[str, list[Obj]] = {}
    for s in existing:
        if s.get("addressType") in wanted:
            by_type.setdefault(str(s.get("addressType")), []).append(s)
        else:
            plan.delete.append(s)
    for address_type in wanted:
        _plan_address_type(plan, svc, pods, node, by_type.get(address_type, []),
                           address_type, max_per_slice, controller)
    return plan


def _plan_address_type(plan: SlicePlan, svc: Obj, pods: list[Obj],
                       node: Callable[[str], Obj | None], existing: list[Obj],
                       address_type: str, max_per_slice: int, controller: str) -> None:
    create: list[Obj] = []
    update: list[Obj] = []
    delete: list[Obj] = []
    existing_by_ports: dict[str, list[Obj]] = {}
    for s in existing:
        if _owned_by(s, svc):
            existing_by_ports.setdefault(_port_key(s.get("ports") or []), []).append(s)
        else:
            delete.append(s)
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    desired: dict[str, dict[tuple[Any, ...], Obj]] = {}
    ports_of: dict[str, list[Obj]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, True):
            continue
        ports = _endpoint_ports(svc, pod)
        key = _port_key(ports)
        desired.setdefault(key, {})
        ports_of.setdefault(key, ports)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        n = node(node_name) if node_name else None
        if n is None and not publish:
            plan.problems.append(f"skipping Pod {_meta(pod).get('name')} for Service "
                                 f"{_meta(svc).get('namespace')}/{_meta(svc).get('name')}: "
                                 f"Node {node_name} Not Found")
            continue
        ep = pod_to_endpoint(pod, n, svc, address_type)
        if ep["addresses"]:
            desired[key][_ep_hash(ep)] = ep
    for key, eps in desired.items():
        c, u, d = _plan_ports(svc, existing_by_ports.get(key, []), eps, ports_of[key],
                              address_type, max_per_slice, controller)
        create += c
        update += u
        delete += d
    for key, slices in existing_by_ports.items():
        if key not in desired:
            delete += slices
    if len(existing) == len(delete) and not create:
        placeholder = new_slice(svc, [], address_type, controller)
        if len(delete) == 1 and _placeholder_equal(delete[0], placeholder):
            delete = []
        else:
            create.append(placeholder)
    _reuse_deletions(svc, create, update, delete)
    plan.create += create
    plan.update += update
    plan.delete += delete


def _placeholder_equal(s: Obj, placeholder: Obj) -> bool:
    return (not s.get("endpoints") and not s.get("ports")
            and _meta(s).get("namespace") == _meta(placeholder).get("namespace")
            and (_meta(s).get("labels") or {}) == _meta(placeholder)["labels"]
            and (_meta(s).get("ownerReferences") or []) == _meta(placeholder)["ownerReferences"])


def _reuse_deletions(svc: Obj, create: list[Obj], update: list[Obj], delete: list[Obj]) -> None:
    """``finalize``: turn creations into updates of owned slices of the same address type that
    would otherwise be deleted."""
    i = 0
    while i < len(delete) and create:
        doomed, new = delete[i], create[-1]
        if doomed.get("addressType") == new.get("addressType") and _owned_by(doomed, svc):
            reused = copy.deepcopy(doomed)
            reused["metadata"]["labels"] = new["metadata"]["labels"]
            reused["ports"], reused["endpoints"] = new["ports"], new["endpoints"]
            create.pop()
            update.append(reused)
            delete.pop(i)
        else:
            i += 1


def _plan_ports(svc: Obj, existing: list[Obj], desired: dict[tuple[Any, ...], Obj],
                ports: list[Obj], address_type: str, max_per_slice: int, controller: str
                ) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """``reconcileByPortMapping`` for one group of ports."""
    desired = dict(desired)
    changed: dict[str, Obj] = {}  # name -> slice to update
    unchanged: dict[str, Obj] = {}
    to_delete: list[Obj] = []
    for s in existing:
        keep: list[Obj] = []
        updated = False
        for ep in s.get("endpoints") or ():
            want = desired.pop(_ep_hash(ep), None)
            if want is not None:
                keep.append(want)
                updated = updated or not _ep_same(want, ep)
        labels, labels_changed = slice_labels(s, svc, controller)
        name = _meta(s).get("name", "")
        if updated or len(keep) != len(s.get("endpoints") or ()):
            if not keep:
                to_delete.append(s)
                continue
            fresh = copy.deepcopy(s)
            fresh["endpoints"], fresh["metadata"]["labels"] = keep, labels
            changed[name] = fresh
        elif labels_changed:
            fresh = copy.deepcopy(s)
            fresh["metadata"]["labels"] = labels
            changed[name] = fresh
        else:
            unchanged[name] = s
    left = list(desired.values())
    # 2. fill the slices being updated anyway, fullest first
    for s in sorted(changed.values(), key=lambda x: -len(x["endpoints"])):
        room = max_per_slice - len(s["endpoints"])
        if room > 0 and left:
            s["endpoints"] = s["endpoints"] + left[:room]
            left = left[room:]
    # 3. leftovers: into the unchanged slice closest to full, else new slices
    create: list[Obj] = []
    while left:
        target: Obj | None = None
        if len(left) < max_per_slice and unchanged:
            target = _slice_to_fill(list(unchanged.values()), len(left), max_per_slice)
        if target is None:
            target = new_slice(svc, ports, address_type, controller)
        else:
            target = copy.deepcopy(target)
        room = max_per_slice - len(target["endpoints"])
        target["endpoints"] = list(target["endpoints"]) + left[:room]
        left = left[room:]
        name = _meta(target).get("name")
        if name:
            changed[name] = target
            unchanged.pop(name, None)
        else:
            create.append(target)
    return create, list(changed.values()), to_delete


def _slice_to_fill(slices: list[Obj], count: int, max_per_slice: int) -> Obj | None:
    best, best_diff = None, max_per_slice
    for s in slices:
        diff = max_per_slice - (count + len(s.get("endpoints") or ()))
        if 0 <= diff < best_diff:
            best, best_diff = s, diff
            if diff == 0:
                break
    return best
