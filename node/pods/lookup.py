"""Which container instance a request means: the kubelet's ``validateContainerLogStatus``,
for ``kubectl logs`` (``-c``, ``--previous``) and for exec/attach, from the pod's status as
the worker reported it.  Pure; the errors carry the kubelet's messages (the streaming server
answers them as 400 BadRequest)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.runtime.api import parse_container_id

__all__ = ["LogTargetError", "log_container_id", "running_container_id"]


class LogTargetError(Exception):
    """No log to show, and why (``kind``: waiting, previous, terminated, unknown)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _status_of(status: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for s in status.get(key) or []:
            if s.get("name") == container:
                return s
    return None


def log_container_id(status: Mapping[str, Any], pod_name: str, container: str,
                     previous: bool = False) -> str:
    """The runtime id of the instance whose log to read.  Raises :class:`LogTargetError`."""
    s = _status_of(status, container)
    if s is None:
        raise LogTargetError("unknown", f'container "{container}" in pod "{pod_name}" is '
                                        "waiting to start - no logs yet")
    state, last = s.get("state") or {}, (s.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise LogTargetError("previous", f'previous terminated container "{container}" '
                                             f'in pod "{pod_name}" not found')
        return parse_container_id(last["containerID"])
    if "running" in state:
        return parse_container_id(s.get("containerID", ""))
    if "terminated" in state:
        cid = state["terminated"].get("containerID") or (last or {}).get("containerID")
        if not cid:
            raise LogTargetError("terminated", f'container "{container}" in pod "{pod_name}" '
                                               "is terminated")
        return parse_container_id(cid)
    if last is not None:
        if not last.get("containerID"):
            raise LogTargetError("terminated", f'container "{container}" in pod "{pod_name}" '
                                               "is terminated")
        return parse_container_id(last["containerID"])
    reason = (state.get("waiting") or {}).get("reason", "")
    text = {"ErrImagePull": "image can't be pulled",
            "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
    if not text:
        raise LogTargetError("waiting", f'container "{container}" in pod "{pod_name}" is '
                                        "waiting to start - no logs yet")
    raise LogTargetError("waiting", f'container "{container}" in pod "{pod_name}" is waiting '
                                    f"to start: {text}")


def running_container_id(status: Mapping[str, Any], container: str) -> str | None:
    """The running instance of ``container`` (exec, attach), or None."""
    s = _status_of(status, container)
    if s is None or "running" not in (s.get("state") or {}) or not s.get("containerID"):
        return None
    return parse_container_id(s["containerID"])
