"""The pod workers: one per pod bound to this node, driving a runtime
(:mod:`node.runtime.api`) toward the pod's spec and reporting its status as the kubelet computes
it.  Pure over the Runtime protocol and an injected Clock; the agent wires the API side (the
pods informer, the status writer, the event recorder).

Import the submodules: :mod:`.worker` (:class:`PodWorker`), :mod:`.manager` (:class:`PodWorkers`),
:mod:`.status`, :mod:`.probes`, :mod:`.backoff`, :mod:`.env`, :mod:`.containers`, :mod:`.sink`."""

__all__: list[str] = []
