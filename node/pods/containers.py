"""From a pod's container spec to the runtime's :class:`~node.runtime.api.ContainerConfig`
(the kubelet's ``generateContainerConfig``): ``$(VAR)`` expansion of command and args with the
container's environment, volume mounts resolved to the sandbox's directories, ports, limits,
and the spec helpers the worker needs (restartable init containers, named ports, grace)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from control.api.quantity import QuantityError, parse_quantity
from node.runtime.api import ContainerConfig, ContainerPort, Mount, PodSandbox, Resources

from .env import ContainerConfigError, expand

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "container_config",
    "is_sidecar",
    "pod_grace_seconds",
    "resolve_port",
]

DEFAULT_GRACE_SECONDS = 30


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """A restartable init container (``restartPolicy: Always``): it starts in init order and
    keeps running beside the app containers."""
    return container.get("restartPolicy") == "Always"


def pod_grace_seconds(pod: Mapping[str, Any]) -> int:
    """The termination grace period: the deletion's (``metadata.deletionGracePeriodSeconds``)
    when the pod is being deleted, else the spec's (30 s by default)."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") is not None:
        return int(meta["deletionGracePeriodSeconds"])
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_SECONDS if grace is None else int(grace)


def resolve_port(container: Mapping[str, Any], port: Any) -> int:
    """A probe's or hook's ``port``: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"port {text!r} is not a named port of container "
                     f"{container.get('name', '')!r}")


def container_config(pod: Mapping[str, Any], container: Mapping[str, Any], *, attempt: int,
                     env: Sequence[tuple[str, str]], sandbox: PodSandbox) -> ContainerConfig:
    """Raises :class:`ContainerConfigError` for a mount of a volume the pod does not have."""
    env_map = dict(env)
    meta = pod.get("metadata") or {}
    return ContainerConfig(
        name=container.get("name", ""),
        image=container.get("image", ""),
        attempt=attempt,
        command=tuple(expand(str(a), env_map) for a in container.get("command") or ()),
        args=tuple(expand(str(a), env_map) for a in container.get("args") or ()),
        env=tuple(env),
        working_dir=container.get("workingDir", ""),
        mounts=tuple(_mounts(pod, container, sandbox, env_map)),
        ports=tuple(ContainerPort(int(p.get("containerPort", 0)), p.get("name", ""),
                                  p.get("protocol", "TCP"))
                    for p in container.get("ports") or []),
        resources=_resources(container),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        labels={"io.kubernetes.pod.name": meta.get("name", ""),
                "io.kubernetes.pod.namespace": meta.get("namespace", ""),
                "io.kubernetes.pod.uid": meta.get("uid", ""),
                "io.kubernetes.container.name": container.get("name", "")},
    )


def _mounts(pod: Mapping[str, Any], container: Mapping[str, Any], sandbox: PodSandbox,
            env: Mapping[str, str]) -> list[Mount]:
    host_paths = {v.get("name"): (v.get("hostPath") or {}).get("path", "")
                  for v in (pod.get("spec") or {}).get("volumes") or [] if "hostPath" in v}
    out = []
    for m in container.get("volumeMounts") or []:
        name = m.get("name", "")
        base = sandbox.volume_paths.get(name) or host_paths.get(name)
        if not base:
            raise ContainerConfigError(f'cannot find volume "{name}" to mount into container '
                                       f'"{container.get("name", "")}"')
        sub = m.get("subPath") or (expand(m["subPathExpr"], env) if m.get("subPathExpr")
                                   else "")
        if sub:
            if os.path.isabs(sub) or ".." in sub.split("/"):
                raise ContainerConfigError(f"invalid subPath {sub!r}")
            base = os.path.join(base, sub)
        out.append(Mount(container_path=m.get("mountPath", ""), host_path=base,
                         read_only=bool(m.get("readOnly"))))
    return out


def _resources(container: Mapping[str, Any]) -> Resources:
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}

    def milli(raw: Any) -> int | None:
        try:
            return None if raw is None else int(parse_quantity(raw) * 1000)
        except QuantityError:
            return None

    def whole(raw: Any) -> int | None:
        try:
            return None if raw is None else int(parse_quantity(raw))
        except QuantityError:
            return None

    return Resources(cpu_limit_millis=milli(limits.get("cpu")),
                     memory_limit_bytes=whole(limits.get("memory")),
                     cpu_request_millis=milli(requests.get("cpu")),
                     memory_request_bytes=whole(requests.get("memory")))
