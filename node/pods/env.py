"""A container's environment and its ``$(VAR)`` expansion, as the kubelet builds them
(``makeEnvironmentVariables``, ``envvars.FromServices``, ``third_party/forked/golang/
expansion``).

Order: ``envFrom`` sources, then ``env`` entries (each may refer to the variables before it),
then the Service variables not already defined: every Service of the pod's namespace with a
cluster IP when ``enableServiceLinks`` is on (the default), and always the ``kubernetes``
Service of ``default`` (``KUBERNETES_SERVICE_HOST``/``PORT``).  A missing ConfigMap, Secret or
key that is not optional is a :class:`ContainerConfigError` — the container waits with reason
CreateContainerConfigError, as in Kubernetes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

from node.runtime.downward import DownwardError, PodFacts, field_ref_value, resource_field_value
from node.runtime.volumes import ObjectLookup

__all__ = ["ContainerConfigError", "container_env", "expand", "service_env"]

_VALID_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ContainerConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Replace ``$(NAME)`` by ``env[NAME]``; an unknown name stays as written, ``$$`` is a
    literal ``$`` (so ``$$(NAME)`` stays ``$(NAME)``)."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def service_env(services: Sequence[Mapping[str, Any]], namespace: str,
                enable_service_links: bool = True) -> dict[str, str]:
    """The Docker-links-style variables of the Services a pod in ``namespace`` sees."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        ip = (svc.get("spec") or {}).get("clusterIP")
        if not ip or ip == "None":
            continue
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if ns == "default" and name == "kubernetes":
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name, svc in sorted(chosen.items()):
        spec = svc.get("spec") or {}
        ip = spec["clusterIP"]
        prefix = name.upper().replace("-", "_")
        ports = spec.get("ports") or []
        env[f"{prefix}_SERVICE_HOST"] = ip
        if not ports:
            continue
        first = ports[0]
        env[f"{prefix}_SERVICE_PORT"] = str(first.get("port"))
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = \
                    str(p.get("port"))
        env[f"{prefix}_PORT"] = _url(first, ip)
        for p in ports:
            proto = (p.get("protocol") or "TCP").upper()
            base = f"{prefix}_PORT_{p.get('port')}_{proto}"
            env[base] = _url(p, ip)
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(p.get("port"))
            env[f"{base}_ADDR"] = ip
    return env


def _url(port: Mapping[str, Any], ip: str) -> str:
    proto = (port.get("protocol") or "TCP").lower()
    host = f"[{ip}]" if ":" in ip else ip
    return f"{proto}://{host}:{port.get('port')}"


async def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], *,
                        lookup: ObjectLookup, services: Sequence[Mapping[str, Any]],
                        facts: PodFacts) -> list[tuple[str, str]]:
    """The container's environment, ordered (a later duplicate wins).
    Raises :class:`ContainerConfigError`."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace", "")
    spec = pod.get("spec") or {}
    svc_env = service_env(services, namespace, spec.get("enableServiceLinks", True) is not False)
    result: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for key, value in (await _env_from(namespace, source, lookup)).items():
            name = prefix + key
            if _VALID_NAME.match(name):
                result[name] = value
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "valueFrom" in var:
            found = await _value_from(pod, container, var["valueFrom"] or {}, lookup, facts)
            if found is None:
                continue
            result[name] = found
        else:
            result[name] = expand(str(var.get("value", "")), {**svc_env, **result})
    for name, value in svc_env.items():
        result.setdefault(name, value)
    return list(result.items())


async def _env_from(namespace: str, source: Mapping[str, Any],
                    lookup: ObjectLookup) -> dict[str, str]:
    for key, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
        ref = source.get(key)
        if ref is None:
            continue
        name = ref.get("name", "")
        obj = await (lookup.configmap(namespace, name) if kind == "configmap"
                     else lookup.secret(namespace, name))
        if obj is None:
            if ref.get("optional"):
                return {}
            raise ContainerConfigError(f'{kind} "{name}" not found')
        return _data(obj, kind)
    return {}


def _data(obj: Mapping[str, Any], kind: str) -> dict[str, str]:
    if kind == "configmap":
        return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
    return {str(k): base64.b64decode(v).decode(errors="replace")
            for k, v in (obj.get("data") or {}).items()}


async def _value_from(pod: Mapping[str, Any], container: Mapping[str, Any],
                      source: Mapping[str, Any], lookup: ObjectLookup,
                      facts: PodFacts) -> str | None:
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    try:
        if "fieldRef" in source:
            return field_ref_value(pod, (source["fieldRef"] or {}).get("fieldPath", ""), facts)
        if "resourceFieldRef" in source:
            ref = source["resourceFieldRef"] or {}
            return resource_field_value(pod, ref.get("containerName") or container.get("name",
                                                                                    ""),
                                        ref.get("resource", ""), ref.get("divisor"), facts)
    except DownwardError as e:
        raise ContainerConfigError(str(e)) from e
    for key, kind, title in (("configMapKeyRef", "configmap", "ConfigMap"),
                             ("secretKeyRef", "secret", "Secret")):
        ref = source.get(key)
        if ref is None:
            continue
        name, item = ref.get("name", ""), ref.get("key", "")
        obj = await (lookup.configmap(namespace, name) if kind == "configmap"
                     else lookup.secret(namespace, name))
        if obj is None:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f'{kind} "{name}" not found')
        data = _data(obj, kind)
        if item not in data:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f"couldn't find key {item} in {title} "
                                       f"{namespace}/{name}")
        return data[item]
    return None
