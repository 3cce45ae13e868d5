"""The node agent's two API clients, one definition for the real agent and hollow nodes (their
API traffic must not differ).

``client`` carries pod work (status writes, token requests, volume sources, events) over at
most :data:`API_CONNECTIONS` pooled connections: the kubelet multiplexes everything over one
HTTP/2 connection, and without a limit a node starting 30 pods at once opened 30 TLS
connections, which at 1,000 hollow nodes spent two thirds of their CPU in handshakes and timed
out their own heartbeats.  Four, not eight: a node's pod work comes in bursts, and each burst
opened up to eight connections that expired idle a minute later — at 1,000 nodes the
handshakes were still 7 % of the apiserver and 11 % of the hollow processes.  Requests beyond
four wait in the client (not against their timeout).  ``heartbeat`` is separate so Lease
renewals and node status never queue behind pod work.  Its attempts, like the kubelet's
heartbeat client, may take 10 s (less only with a Lease renewed more often): longer than
the apiserver's 4-s flow-control wait, so an overloaded apiserver answers 429 on the live
connection before the client gives up.  With 5-s attempts, one 10-s stall at 16,000 pods
(three store snapshots at once) left 1,000 hollow nodes timing out heartbeats and status
patches, closing their connections and paying TLS handshakes on both sides for every retry,
a spiral that did not end.  Watches (informers) use each client's stream pool, which is not limited.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from control.client import ApiClient, ClientConfig

from .config import AgentConfig

__all__ = ["API_CONNECTIONS", "HEARTBEAT_ATTEMPT", "HEARTBEAT_CONNECTIONS", "agent_clients"]

API_CONNECTIONS = 4
HEARTBEAT_CONNECTIONS = 2
HEARTBEAT_ATTEMPT = 10.0  # the kubelet's heartbeat client timeout (nodeStatusUpdateFrequency)


@contextlib.asynccontextmanager
async def agent_clients(client_config: ClientConfig, user_agent: str, config: AgentConfig, *,
                        qps: float, burst: int) -> AsyncIterator[tuple[ApiClient, ApiClient]]:
    """``(client, heartbeat)``, closed on exit."""
    async with ApiClient(client_config, user_agent=user_agent, qps=qps, burst=burst,
                         max_connections=API_CONNECTIONS) as client, \
            ApiClient(client_config, user_agent=user_agent, timeout=config.lease_renew_seconds,
                      attempt_timeout=min(HEARTBEAT_ATTEMPT, config.lease_renew_seconds),
                      max_connections=HEARTBEAT_CONNECTIONS) as heartbeat:
        yield client, heartbeat
