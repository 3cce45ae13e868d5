"""Which Secrets and ConfigMaps a pod spec names (image pull secrets, env, envFrom, volumes).

Mirror pods (created by a node for a static pod) may reference neither, and a ServiceAccount
that enforces mountable secrets limits which Secrets its pods may use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["configmap_names", "containers_of", "secret_names"]

# Volume sources that carry a secret reference, and where: {"secretName"} or {"secretRef"}.
_SECRET_NAME_SOURCES = ("secret", "azureFile")
_SECRET_REF_SOURCES = ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos")


def containers_of(pod: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(kind, container)`` for init, app and ephemeral containers, in that order."""
    spec = pod.get("spec") or {}
    for kind, field in (("init container", "initContainers"), ("container", "containers"),
                        ("ephemeral container", "ephemeralContainers")):
        for container in spec.get(field) or []:
            yield kind, container


def secret_names(pod: Mapping[str, Any]) -> list[str]:
    """Every Secret name the pod references, in spec order (duplicates kept)."""
    spec = pod.get("spec") or {}
    out = [str(ref.get("name", "")) for ref in spec.get("imagePullSecrets") or []]
    for _, container in containers_of(pod):
        out += _env_refs(container, "secretRef", "secretKeyRef")
    for volume in spec.get("volumes") or []:
        for source in _SECRET_NAME_SOURCES:
            if isinstance(volume.get(source), dict):
                out.append(str(volume[source].get("secretName", "")))
        for source in _SECRET_REF_SOURCES:
            ref = (volume.get(source) or {}).get("secretRef")
            if isinstance(ref, dict):
                out.append(str(ref.get("name", "")))
        ref = (volume.get("csi") or {}).get("nodePublishSecretRef")
        if isinstance(ref, dict):
            out.append(str(ref.get("name", "")))
        out += _projected(volume, "secret")
    return out


def configmap_names(pod: Mapping[str, Any]) -> list[str]:
    """Every ConfigMap name the pod references, in spec order (duplicates kept)."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    for _, container in containers_of(pod):
        out += _env_refs(container, "configMapRef", "configMapKeyRef")
    for volume in spec.get("volumes") or []:
        if isinstance(volume.get("configMap"), dict):
            out.append(str(volume["configMap"].get("name", "")))
        out += _projected(volume, "configMap")
    return out


def _env_refs(container: Mapping[str, Any], from_key: str, key_ref: str) -> list[str]:
    out = []
    for env_from in container.get("envFrom") or []:
        if isinstance(env_from.get(from_key), dict):
            out.append(str(env_from[from_key].get("name", "")))
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get(key_ref)
        if isinstance(ref, dict):
            out.append(str(ref.get("name", "")))
    return out


def _projected(volume: Mapping[str, Any], kind: str) -> list[str]:
    sources = (volume.get("projected") or {}).get("sources") or []
    return [str(s[kind].get("name", "")) for s in sources if isinstance(s.get(kind), dict)]
