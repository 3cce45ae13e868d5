"""The apiserver's side of the node agents: ``pods/{exec,attach,portforward,log}`` and
``nodes/proxy`` proxied to the pod's node agent after RBAC, and ``metrics.k8s.io`` computed
from the agents' stats (:mod:`.metrics`).  :mod:`.location` finds the agent, :mod:`.client`
reaches it with the apiserver's kubelet-client certificate.
"""

from __future__ import annotations

from .client import KubeletClient
from .logs import serve_log
from .metrics import METRICS_RESOURCES, serve_metrics
from .nodeproxy import serve_node_proxy
from .streams import serve_stream

__all__ = ["METRICS_RESOURCES", "KubeletClient", "serve_log", "serve_metrics",
           "serve_node_proxy", "serve_stream"]
