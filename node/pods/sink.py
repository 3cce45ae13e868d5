"""What a pod worker needs from the agent, as Protocols: somewhere to put the pod's status
and events, and the cluster objects a pod refers to.

The agent implements them over ``control.client``: :class:`StatusSink` by a status writer
that batches per pod and writes ``pods/status`` guarded by resourceVersion, and deletes the pod
object with grace 0 when told the pod has terminated (as the kubelet does); :class:`EventSink`
by ``control.client.events.EventRecorder`` as it is; :class:`PodSources` by the informer
caches (ConfigMaps, Secrets, Services) and the TokenRequest API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from node.runtime.volumes import ObjectLookup

__all__ = ["EventSink", "PodSources", "StatusSink"]


class StatusSink(Protocol):
    def set_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        """The pod's latest status (the whole ``status`` object); must not block.  A later
        call supersedes an earlier one not yet written."""
        ...

    def pod_terminated(self, pod: Mapping[str, Any]) -> None:
        """The pod, being deleted, has no running container left and its final status has
        been given: delete the object with grace period 0."""
        ...


class EventSink(Protocol):
    def event(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        """Record an event about ``obj`` (the pod); must not block."""
        ...


class PodSources(ObjectLookup, Protocol):
    def services(self) -> Sequence[Mapping[str, Any]]:
        """Every Service the node knows (the environment code picks the pod's namespace's and
        ``default/kubernetes``)."""
        ...
