"""The node agent's settings: who it is, where it keeps its state, how often it heartbeats,
what it reports as capacity, and what it does with its pods when it stops.

Defaults are the kubelet's (``pkg/kubelet/apis/config/v1beta1/defaults.go``): a Lease of 40 s
renewed every 10 s (a quarter of it) with retries backed off 200 ms .. 7 s; node status
computed every 10 s and posted when it changes or every 5 minutes; 110 pods; container logs
10 MiB x 5; crash-loop back-off capped at 300 s.  Built by ``python -m node``
(:mod:`node.__main__`) from flags, or directly by tests and hollow nodes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KUBELET_VERSION", "RUNTIME_VERSION", "AgentConfig", "positive_seconds"]

KUBELET_VERSION = "v1.37.0-ketch"
RUNTIME_VERSION = "ketch-process://1"


@dataclass(frozen=True)
class AgentConfig:
    """One agent.  ``address`` is the node's InternalIP: where its streaming server and its
    NodePorts listen (each agent on one machine gets its own loopback address).
    ``pod_cidr`` is a fallback used only when the controller-manager has not given the Node a
    ``spec.podCIDR`` within ``pod_cidr_wait`` seconds (the agent then records it on the Node).
    ``capacity`` overrides what the machine reports (``cpu``, ``memory``, ``pods``,
    ``ephemeral-storage`` as quantities).  ``keep_pods_on_exit``: a stopping agent leaves its
    pods running (a new agent re-adopts them); otherwise it terminates them, each with its own
    grace period capped at ``shutdown_grace``, and reports them Failed, as the kubelet's
    graceful node shutdown does.  ``run_record``: a file where the shims append a line per
    container start and exit (the truth of what ran, for chaos runs)."""

    name: str
    dir: str
    address: str = "127.0.0.1"
    streaming_port: int = 10250
    labels: Mapping[str, str] = field(default_factory=dict)
    pod_cidr: str = ""
    pod_cidr_wait: float = 10.0
    lease_duration: int = 40
    lease_renew_fraction: float = 0.25
    lease_retry_initial: float = 0.2
    lease_retry_cap: float = 7.0
    status_compute_seconds: float = 10.0
    status_report_seconds: float = 300.0
    max_pods: int = 110
    capacity: Mapping[str, str] = field(default_factory=dict)
    images: Mapping[str, Any] = field(default_factory=dict)
    keep_pods_on_exit: bool = False
    shutdown_grace: float = 30.0
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 5
    backoff_cap: float = 300.0
    # the kubelet's --sync-frequency (1 min): how often each pod worker looks again with
    # nothing to wake it (runtime events, pod changes and back-offs wake it at once); at
    # 10 s, 30,000 pods on 1,000 hollow nodes were 3,000 idle syncs a second
    sync_seconds: float = 60.0
    status_writers: int = 8
    service_proxy: bool = True
    # the port published in the Node's daemonEndpoints when the apiserver must reach the
    # streaming server elsewhere than where it listens (a proxy in front of it); 0: its own
    streaming_advertise_port: int = 0
    # append every container start and exit here (node.runtime.runrecord); "": no record
    run_record: str = ""

    @property
    def lease_renew_seconds(self) -> float:
        return self.lease_duration * self.lease_renew_fraction

    @property
    def runtime_dir(self) -> str:
        """The runtime's state (sandboxes, container records, logs): what a restarted agent
        re-adopts."""
        return os.path.join(self.dir, "runtime")

    @property
    def state_path(self) -> str:
        """What the agent remembers of itself between runs (its pod CIDR)."""
        return os.path.join(self.dir, "agent-state.json")


def positive_seconds(flag: str, value: float) -> float:
    """``value`` if it is a positive number of seconds; ValueError naming ``flag`` if not."""
    if not value > 0:
        raise ValueError(f"{flag} must be > 0 seconds, got {value}")
    return value
