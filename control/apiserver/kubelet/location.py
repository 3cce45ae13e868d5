"""Where a pod's streams are served: which container, which node, which agent endpoint — with
kube-apiserver's error texts when there is none (pod/strategy.go ``streamLocation``,
``LogLocation``, ``validateContainer``; node ``GetPreferredNodeAddress``).

Pure: objects in, an :class:`Endpoint` or an :class:`~control.api.errors.APIError` out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.api.errors import BadRequest, ServiceUnavailable

__all__ = [
    "Endpoint",
    "container_names",
    "log_container",
    "node_endpoint",
    "node_is_ready",
    "pod_node",
    "stream_container",
]

#: The address types tried, in order: the agent listens on the node's internal address.
ADDRESS_PREFERENCE = ("InternalIP", "Hostname")


@dataclass(frozen=True)
class Endpoint:
    """A node agent's streaming server: ``https://host:port``."""

    node: str
    host: str
    port: int

    def url(self, path: str) -> str:
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"https://{host}:{self.port}{path}"


def _containers(pod: Mapping[str, Any], key: str) -> list[str]:
    spec = pod.get("spec") or {}
    return [c.get("name", "") for c in spec.get(key) or () if isinstance(c, dict)]


def container_names(pod: Mapping[str, Any]) -> list[str]:
    """Every container of the pod: regular, init and ephemeral (all may be exec'd or logged)."""
    return [*_containers(pod, "containers"), *_containers(pod, "initContainers"),
            *_containers(pod, "ephemeralContainers")]


def stream_container(pod: Mapping[str, Any], container: str) -> str:
    """The container exec and attach go to (``streamLocation``): the named one, which must
    exist, else the only one."""
    name = pod["metadata"]["name"]
    if container:
        if container not in container_names(pod):
            raise BadRequest(f"container {container} is not valid for pod {name}")
        return container
    regular = _containers(pod, "containers")
    if len(regular) == 1:
        return regular[0]
    if not regular:
        raise BadRequest(f"pod {name} does not have a container")
    message = (f"a container name must be specified for pod {name}, choose one of: "
               f"[{' '.join(regular)}]")
    init = _containers(pod, "initContainers")
    if init:
        message += f" or one of the init containers: [{' '.join(init)}]"
    raise BadRequest(message)


def log_container(pod: Mapping[str, Any], container: str) -> str:
    """The container ``pods/log`` reads (``validateContainer``), with its own wording."""
    name = pod["metadata"]["name"]
    if container:
        if container not in container_names(pod):
            raise BadRequest(f"container {container} is not valid for pod {name}")
        return container
    regular = _containers(pod, "containers")
    if len(regular) == 1:
        return regular[0]
    if not regular:
        raise BadRequest(f"a container name must be specified for pod {name}")
    raise BadRequest(f"a container name must be specified for pod {name}, choose one of: "
                     f"[{' '.join(container_names(pod))}]")


def pod_node(pod: Mapping[str, Any]) -> str:
    """The node the pod is bound to; 400 ``pod X does not have a host assigned`` if none."""
    node = (pod.get("spec") or {}).get("nodeName") or ""
    if not node:
        raise BadRequest(f"pod {pod['metadata']['name']} does not have a host assigned")
    return str(node)


def node_endpoint(node: Mapping[str, Any]) -> Endpoint:
    """The node agent's streaming server, from ``status.addresses`` (InternalIP, then Hostname)
    and ``status.daemonEndpoints.kubeletEndpoint.Port``; 503 when the node has neither."""
    name = node["metadata"]["name"]
    status = node.get("status") or {}
    addresses = [a for a in status.get("addresses") or () if isinstance(a, dict)]
    host = ""
    for kind in ADDRESS_PREFERENCE:
        host = next((str(a.get("address")) for a in addresses
                     if a.get("type") == kind and a.get("address")), "")
        if host:
            break
    if not host:
        known = ", ".join(f"{{{a.get('type')} {a.get('address')}}}" for a in addresses)
        raise ServiceUnavailable(f"no preferred addresses found for node {name}; "
                                 f"known addresses: [{known}]")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ServiceUnavailable(f'node "{name}" has no kubelet endpoint '
                                 "(status.daemonEndpoints.kubeletEndpoint.Port)")
    return Endpoint(name, host, port)


def node_is_ready(node: Mapping[str, Any]) -> bool:
    """Its ``Ready`` condition is ``True`` (metrics are gathered only from such nodes)."""
    for cond in (node.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False
