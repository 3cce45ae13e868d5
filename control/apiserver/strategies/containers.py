"""Container defaults and validation, shared by pods and every pod template (deployments,
replica sets, daemon sets, stateful sets, jobs).

Defaults are those of ``SetDefaults_Container`` and friends; validation follows
``validateContainers``: names, image, ports, environment, volume mounts and resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause
from control.api.quantity import quantity_or_none

from .causes import (
    child,
    duplicate,
    index,
    invalid,
    mappings,
    not_found,
    one_of,
    required,
)
from .names import dns1123_label, env_var_name, port_name
from .quantity import validate_quantities

__all__ = [
    "default_container",
    "pull_policy_for",
    "validate_container",
    "validate_port_number",
]

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                   "failureThreshold": 3}


def pull_policy_for(image: str) -> str:
    """``Always`` for ``:latest`` or untagged images, else ``IfNotPresent`` (a digest pins)."""
    if "@" in image:
        return "IfNotPresent"
    colon, slash = image.rfind(":"), image.rfind("/")
    tag = image[colon + 1:] if colon > slash else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for k, v in _PROBE_DEFAULTS.items():
        probe.setdefault(k, v)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def default_container(c: dict[str, Any], *, host_network: bool = False) -> None:
    """Fill what the API server fills in a container, in place."""
    c.setdefault("imagePullPolicy", pull_policy_for(str(c.get("image") or "")))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if host_network and "containerPort" in port:
                port.setdefault("hostPort", port["containerPort"])
    for probe in _PROBES:
        _default_probe(c.get(probe))
    for env in c.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def validate_port_number(value: Any, field: str) -> list[Cause]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return [invalid(field, value, "must be between 1 and 65535, inclusive")]
    return []


def _validate_ports(ports: list[Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(mappings(ports)):
        p = index(path, i)
        name = port.get("name")
        if name:
            problems = port_name(str(name))
            errs += [invalid(child(p, "name"), name, msg) for msg in problems]
            if not problems and name in names:
                errs.append(duplicate(child(p, "name"), name))
            names.add(name)
        if not port.get("containerPort"):
            errs.append(required(child(p, "containerPort")))
        else:
            errs += validate_port_number(port["containerPort"], child(p, "containerPort"))
        if port.get("hostPort"):
            errs += validate_port_number(port["hostPort"], child(p, "hostPort"))
        errs += one_of(port.get("protocol"), child(p, "protocol"), _PROTOCOLS)
    return errs


def _validate_env(env: list[Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, var in enumerate(mappings(env)):
        p = child(index(path, i), "name")
        name = var.get("name")
        if not name:
            errs.append(required(p))
        else:
            errs += [invalid(p, name, msg) for msg in env_var_name(str(name))]
    return errs


def _validate_mounts(mounts: list[Any], path: str, volumes: set[str]) -> list[Cause]:
    errs: list[Cause] = []
    for i, mount in enumerate(mappings(mounts)):
        p = index(path, i)
        name = mount.get("name")
        if not name:
            errs.append(required(child(p, "name")))
        elif name not in volumes:
            errs.append(not_found(child(p, "name"), name))
        if not mount.get("mountPath"):
            errs.append(required(child(p, "mountPath")))
    return errs


def _validate_resources(resources: Mapping[str, Any], path: str) -> list[Cause]:
    requests, limits = resources.get("requests"), resources.get("limits")
    errs = validate_quantities(requests, child(path, "requests"))
    errs += validate_quantities(limits, child(path, "limits"))
    if errs or not isinstance(requests, dict) or not isinstance(limits, dict):
        return errs
    for name, raw in requests.items():
        req, lim = quantity_or_none(raw), quantity_or_none(limits.get(name))
        if req is not None and lim is not None and req > lim:
            errs.append(invalid(child(path, "requests"), str(raw),
                                f"must be less than or equal to {name} limit of "
                                f"{limits[name]}"))
    return errs


def validate_container(c: Mapping[str, Any], path: str, *, volumes: set[str]) -> list[Cause]:
    """Everything about one container except the uniqueness of its name (the pod checks
    that across all its containers). ``volumes`` are the pod's volume names."""
    errs: list[Cause] = []
    name = c.get("name")
    if not name:
        errs.append(required(child(path, "name")))
    else:
        errs += [invalid(child(path, "name"), name, msg) for msg in dns1123_label(str(name))]
    image = c.get("image")
    if not image:
        errs.append(required(child(path, "image")))
    elif str(image).strip() != image:
        errs.append(invalid(child(path, "image"), image,
                            "must not have leading or trailing whitespace"))
    errs += _validate_ports(c.get("ports") or [], child(path, "ports"))
    errs += _validate_env(c.get("env") or [], child(path, "env"))
    errs += _validate_mounts(c.get("volumeMounts") or [], child(path, "volumeMounts"), volumes)
    errs += _validate_resources(c.get("resources") or {}, child(path, "resources"))
    errs += one_of(c.get("imagePullPolicy"), child(path, "imagePullPolicy"), _PULL_POLICIES)
    errs += one_of(c.get("terminationMessagePolicy"), child(path, "terminationMessagePolicy"),
                   _MESSAGE_POLICIES)
    return errs
