"""The node's service proxy (kube-proxy's job): :class:`ServiceProxy` makes Services reachable
at their ClusterIPs and NodePorts, balanced over ready endpoints."""

from __future__ import annotations

from .proxy import ServiceProxy
from .table import Backend, Frontend, build_table

__all__ = ["Backend", "Frontend", "ServiceProxy", "build_table"]
