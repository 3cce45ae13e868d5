"""The node agent (kubelet and kube-proxy's job): registration, heartbeat, pod workers,
runtimes, probes, logs, streaming and the service proxy.  It reaches cluster state only through
:mod:`control.client`."""
