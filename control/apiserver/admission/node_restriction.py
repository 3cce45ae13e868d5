"""NodeRestriction: a node's credentials reach only that node's own objects.

RBAC's ``system:node`` role lets every node write any Node, pod status or Lease; this plugin
narrows that to the requesting node (user ``system:node:<name>`` in group ``system:nodes``):
its own Node (and status: no taint changes, no labels outside the kubelet's set), status of
pods bound to it, deletion and eviction of pods bound to it, mirror pods owned by it, its own
Lease in ``kube-node-lease`` and CSINode, and tokens only for pods bound to it.  Requests
from other users pass untouched.
"""

from __future__ import annotations

from typing import Any

from control.api.errors import NotFound
from control.apiserver.admission.podrefs import configmap_names, secret_names
from control.apiserver.admission.request import (
    CREATE,
    DELETE,
    UPDATE,
    AdmissionRequest,
    ClusterView,
    forbidden,
    request_name,
)
from control.apiserver.admission.service_account import MIRROR_POD_ANNOTATION
from control.apiserver.rbac import NODES_GROUP

__all__ = ["NODE_LEASE_NAMESPACE", "NodeRestriction", "node_identity"]

NODE_LEASE_NAMESPACE = "kube-node-lease"
_NODE_USER_PREFIX = "system:node:"

# Labels a kubelet may set on its own Node: these keys, and any key under these namespaces.
_KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
})
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def node_identity(name: str, groups: tuple[str, ...]) -> str | None:
    """The node name behind a user, or ``None`` for users that are not nodes."""
    if not name.startswith(_NODE_USER_PREFIX) or NODES_GROUP not in groups:
        return None
    return name[len(_NODE_USER_PREFIX):]


class NodeRestriction:
    name = "NodeRestriction"

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        node = node_identity(req.user.name, tuple(req.user.groups))
        if node is None:
            return
        if not node:
            raise forbidden(req, f'could not determine node from user "{req.user.name}"')
        match (req.group, req.resource):
            case ("", "pods"):
                _pods(req, view, node)
            case ("", "nodes"):
                _node(req, node)
            case ("", "persistentvolumeclaims"):
                _pvc(req, node)
            case ("", "serviceaccounts"):
                _token_request(req, view, node)
            case ("coordination.k8s.io", "leases"):
                _own_named(req, node, "node lease", namespace=NODE_LEASE_NAMESPACE)
            case ("storage.k8s.io", "csinodes"):
                _own_named(req, node, "CSINode")


def _pods(req: AdmissionRequest, view: ClusterView, node: str) -> None:
    if req.subresource == "status":
        if req.operation != UPDATE:
            raise forbidden(req, f'unexpected operation "{req.operation}"')
        old = req.old_obj or _existing_pod(req, view, req.name)
        if _pod_node(old) != node:
            raise forbidden(req, f'node "{node}" can only update pod status for pods with '
                                 "spec.nodeName set to itself")
    elif req.subresource == "eviction":
        if req.operation != CREATE:
            raise forbidden(req, f"unexpected operation {req.operation}")
        pod_name = req.name or str(((req.obj or {}).get("metadata") or {}).get("name") or "")
        if not pod_name:
            raise forbidden(req, "could not determine pod from request data")
        if _pod_node(_existing_pod(req, view, pod_name)) != node:
            raise forbidden(req, f"node {node} can only evict pods with spec.nodeName set to "
                                 "itself")
    elif req.subresource:
        raise forbidden(req, f'unexpected subresource "{req.subresource}", only \'status\' and '
                             "'eviction' are allowed")
    elif req.operation == CREATE:
        _mirror_pod_create(req, view, node)
    elif req.operation == DELETE:
        old = req.old_obj or _existing_pod(req, view, req.name)
        if _pod_node(old) != node:
            raise forbidden(req, f'node "{node}" can only delete pods with spec.nodeName set '
                                 "to itself")
    else:
        raise forbidden(req, f'unexpected operation "{req.operation}", node "{node}" can only '
                             "create and delete mirror pods")


def _mirror_pod_create(req: AdmissionRequest, view: ClusterView, node: str) -> None:
    pod = req.obj or {}
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if MIRROR_POD_ANNOTATION not in (meta.get("annotations") or {}):
        raise forbidden(req, f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node '
                             f'"{node}" can only create mirror pods')
    if spec.get("nodeName") != node:
        raise forbidden(req, f'node "{node}" can only create pods with spec.nodeName set to '
                             "itself")
    owners = meta.get("ownerReferences") or []
    if len(owners) > 1:
        raise forbidden(req, f'node "{node}" can only create pods with a single owner '
                             "reference set to itself")
    owner = owners[0] if owners else {}
    if (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
        raise forbidden(req, f'node "{node}" can only create pods with an owner reference set '
                             "to itself")
    if not owner.get("controller"):
        raise forbidden(req, f'node "{node}" can only create pods with a controller owner '
                             "reference set to itself")
    if owner.get("blockOwnerDeletion"):
        raise forbidden(req, f'node "{node}" must not set blockOwnerDeletion on an owner '
                             "reference")
    node_obj = view.get("", "nodes", "", node)
    if node_obj is None:
        raise NotFound("nodes", node)
    uid = (node_obj.get("metadata") or {}).get("uid", "")
    if owner.get("uid", "") != uid:
        raise forbidden(req, f"node {node} UID mismatch: expected {uid} got "
                             f"{owner.get('uid', '')}")
    refs = (
        (spec.get("serviceAccountName") or spec.get("serviceAccount"), "a service account"),
        (secret_names(pod), "secrets"),
        (configmap_names(pod), "configmaps"),
        ([v for v in spec.get("volumes") or [] if v.get("persistentVolumeClaim")],
         "persistentvolumeclaims"),
    )
    for found, what in refs:
        if found:
            raise forbidden(req, f'node "{node}" can not create pods that reference {what}')


def _node(req: AdmissionRequest, node: str) -> None:
    requested = request_name(req)
    if requested != node:
        raise forbidden(req, f'node "{node}" is not allowed to modify node "{requested}"')
    new = req.obj or {}
    if req.operation == CREATE:
        if (new.get("spec") or {}).get("configSource") is not None:
            raise forbidden(req, f'node "{node}" is not allowed to create pods with a non-nil '
                                 "configSource")
        bad = _forbidden_labels(_labels(new), {})
        if bad:
            raise forbidden(req, f'node "{node}" is not allowed to set the following labels: '
                                 + ", ".join(bad))
    elif req.operation == UPDATE and req.old_obj is not None:
        old = req.old_obj
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        if new_spec.get("configSource") is not None and (
                new_spec.get("configSource") != old_spec.get("configSource")):
            raise forbidden(req, f'node "{node}" is not allowed to update configSource to a '
                                 "new non-nil configSource")
        if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
            raise forbidden(req, f'node "{node}" is not allowed to modify taints')
        bad = _forbidden_labels(_labels(new), _labels(old))
        if bad:
            raise forbidden(req, "is not allowed to modify labels: " + ", ".join(bad))


def _pvc(req: AdmissionRequest, node: str) -> None:
    if req.subresource != "status":
        raise forbidden(req, "may only update PVC status")
    if req.operation != UPDATE:
        raise forbidden(req, f'unexpected operation "{req.operation}"')
    if _pvc_essentials(req.old_obj or {}) != _pvc_essentials(req.obj or {}):
        raise forbidden(req, f'node "{node}" is not allowed to update fields other than '
                             "status.capacity and status.conditions")


def _pvc_essentials(pvc: dict[str, Any]) -> dict[str, Any]:
    """The claim without what a node may change (status capacity and conditions) and without
    the bookkeeping the apiserver owns."""
    out = dict(pvc)
    out["metadata"] = {k: v for k, v in (pvc.get("metadata") or {}).items()
                       if k not in ("resourceVersion", "managedFields")}
    out["status"] = {k: v for k, v in (pvc.get("status") or {}).items()
                     if k not in ("capacity", "conditions")}
    return out


def _token_request(req: AdmissionRequest, view: ClusterView, node: str) -> None:
    if req.operation != CREATE or req.subresource != "token":
        return
    ref = ((req.obj or {}).get("spec") or {}).get("boundObjectRef") or {}
    if (ref.get("apiVersion"), ref.get("kind")) != ("v1", "Pod") or not ref.get("name"):
        raise forbidden(req, "node requested token not bound to a pod")
    if not ref.get("uid"):
        raise forbidden(req, "node requested token with a pod binding without a uid")
    pod = _existing_pod(req, view, ref["name"])
    if ref["uid"] != (pod.get("metadata") or {}).get("uid"):
        raise forbidden(req, f"the UID in the bound object reference ({ref['uid']}) does not "
                             "match the UID in record. The object might have been deleted and "
                             "then recreated")
    if _pod_node(pod) != node:
        raise forbidden(req, "node requested token bound to a pod scheduled on a different node")


def _own_named(req: AdmissionRequest, node: str, what: str, *, namespace: str = "") -> None:
    if namespace and req.namespace != namespace:
        raise forbidden(req, f'can only access leases in the "{namespace}" system namespace')
    if request_name(req) != node:
        raise forbidden(req, f"can only access {what} with the same name as the requesting "
                             "node")


def _existing_pod(req: AdmissionRequest, view: ClusterView, name: str) -> dict[str, Any]:
    pod = view.get("", "pods", req.namespace, name)
    if pod is None:
        raise NotFound("pods", name)
    return pod


def _pod_node(pod: dict[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _forbidden_labels(new: dict[str, str], old: dict[str, str]) -> list[str]:
    """Sorted keys added, removed or changed that a kubelet may not touch: anything under
    ``node-restriction.kubernetes.io/``, and kubernetes.io / k8s.io keys outside its set."""
    changed = {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)}
    return sorted(k for k in changed if not _kubelet_may_set(k))


def _kubelet_may_set(key: str) -> bool:
    prefix = key.split("/", 1)[0].lower() if "/" in key else ""
    if _under(prefix, "node-restriction.kubernetes.io"):
        return False
    if not (_under(prefix, "kubernetes.io") or _under(prefix, "k8s.io")):
        return True
    return key in _KUBELET_LABELS or any(_under(prefix, ns) for ns in _KUBELET_LABEL_NAMESPACES)


def _under(prefix: str, namespace: str) -> bool:
    return prefix == namespace or prefix.endswith("." + namespace)
