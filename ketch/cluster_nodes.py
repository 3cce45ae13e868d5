"""The node agents of a local cluster (:mod:`ketch.cluster`): where each listens, its
certificates and kubeconfig, its command line, and what ``ketch status`` says of it.

Addresses: every agent of one machine needs its own InternalIP (its NodePorts and streaming
server listen there), and two ketch clusters on one machine must not collide, so a cluster
takes a block chosen from its directory's path: node ``i`` (1-based) of block ``k`` is
``127.10.k.i``.  Pod CIDRs come from the same block: the controller-manager's cluster CIDR is
``127.(64 + k // 4).((k % 4) * 64).0/18`` (64 nodes of a /24 each, inside 127.64.0.0/10) and
an agent falls back to the /24 it would most likely get if node IPAM gives it none in time.
Service ClusterIPs are 127.16.0.0/12 (the apiserver's), so nothing overlaps.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certs.kubeconfig import write_kubeconfig
from certs.layout import issue_node, issue_node_serving, node_paths, node_serving_paths
from store.launch import free_ports

if TYPE_CHECKING:
    from .cluster import Cluster, Component

__all__ = ["NODE_SHUTDOWN_GRACE", "NODE_STOP_TIMEOUT", "cluster_cidr", "node_argv",
           "node_layout", "node_states", "prepare_nodes"]

NODE_SHUTDOWN_GRACE = 20.0
NODE_STOP_TIMEOUT = NODE_SHUTDOWN_GRACE + 20.0  # pods' grace, then the agent's own exit
_MAX_NODES = 64


def _block(directory: Path) -> int:
    return hashlib.sha256(str(directory).encode()).digest()[0]


def node_address(directory: Path, i: int) -> str:
    """Node ``i``'s (1-based) InternalIP."""
    return f"127.10.{_block(directory)}.{i}"


def cluster_cidr(directory: Path) -> str:
    k = _block(directory)
    return f"127.{64 + k // 4}.{(k % 4) * 64}.0/18"


def service_cidr(directory: Path) -> str:
    """This cluster's /20 of the Service range 127.16.0.0/12: two clusters on one machine
    must not both claim the ``kubernetes`` Service's address (their proxies would share it)."""
    k = _block(directory)
    return f"127.{16 + k // 16}.{(k % 16) * 16}.0/20"


def _pod_cidr(directory: Path, i: int) -> str:
    k = _block(directory)
    return f"127.{64 + k // 4}.{(k % 4) * 64 + i - 1}.0/24"


def node_layout(directory: Path, n: int) -> list[dict[str, str]]:
    """control.json entries of ``n`` agents: name, address and health listener."""
    if n > _MAX_NODES:
        raise ValueError(f"at most {_MAX_NODES} node agents per local cluster")
    out = []
    for i in range(1, n + 1):
        address = node_address(directory, i)
        (port,) = free_ports(address, 1)
        out.append({"name": f"node-{i}", "listen": f"{address}:{port}"})
    return out


def _kubeconfig(cluster: Cluster, c: Component) -> Path:
    return cluster.dir / c.name / "kubeconfig"


def prepare_nodes(cluster: Cluster) -> None:
    """Each agent's client and serving certificates (for its address) and kubeconfig."""
    certs = cluster.store.certs_dir
    for c in cluster.components("node"):
        address = c.listen.rpartition(":")[0]
        issue_node(certs, c.name)
        issue_node_serving(certs, c.name, [address])
        paths = node_paths(certs, c.name)
        (cluster.dir / c.name).mkdir(parents=True, exist_ok=True)
        write_kubeconfig(_kubeconfig(cluster, c), server=cluster.url, ca=paths.ca,
                         cert=paths.cert, key=paths.key, user=f"system:node:{c.name}")


def node_argv(cluster: Cluster, c: Component, python: str) -> list[str]:
    serving = node_serving_paths(cluster.store.certs_dir, c.name)
    address = c.listen.rpartition(":")[0]
    index = int(c.name.rpartition("-")[2])
    others = [a for u in cluster.urls[1:] for a in ("--server", u)]
    return [python, "-m", "node", "--kubeconfig", str(_kubeconfig(cluster, c)), *others,
            "--name", c.name, "--dir", str(cluster.dir / c.name), "--address", address,
            "--streaming-port", "0", "--listen", c.listen,
            "--serving-cert", str(serving.cert), "--serving-key", str(serving.key),
            "--ca", str(serving.ca), "--pod-cidr", _pod_cidr(cluster.dir, index),
            "--shutdown-grace", str(NODE_SHUTDOWN_GRACE)]


def _api(cluster: Cluster, path: str, ctx: ssl.SSLContext) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(cluster.url + path, context=ctx, timeout=2.0) as r:
            found: dict[str, Any] = json.loads(r.read())
            return found
    except (OSError, ValueError):
        return {}


def node_states(cluster: Cluster, ctx: ssl.SSLContext) -> dict[str, dict[str, Any]]:
    """Per Node in the API: ``node_ready`` (its Ready condition) and ``pods`` (Running pods
    bound to it)."""
    nodes = _api(cluster, "/api/v1/nodes", ctx).get("items") or []
    selector = urllib.parse.quote("status.phase=Running")
    pods = _api(cluster, f"/api/v1/pods?fieldSelector={selector}", ctx).get("items") or []
    out: dict[str, dict[str, Any]] = {}
    for n in nodes:
        ready = next((c.get("status") for c in (n.get("status") or {}).get("conditions") or []
                      if c.get("type") == "Ready"), "Unknown")
        out[n["metadata"]["name"]] = {"node_ready": ready, "pods": 0}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node in out:
            out[node]["pods"] += 1
    return out
