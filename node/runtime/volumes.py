"""Pod volumes as directories: emptyDir, configMap, secret, downwardAPI and projected.

Two halves.  :func:`resolve_volumes` (pure, given the ConfigMaps, Secrets and tokens the agent
looks up) turns a pod's ``spec.volumes`` into :class:`~node.runtime.api.VolumeContent` — file
names, bytes, modes — and raises :class:`VolumeSourceMissing` for a ConfigMap, Secret or key
that does not exist (not optional), which the pod worker shows as ContainerCreating with a
FailedMount event, as the kubelet does.  :func:`write_volume` (I/O, run by a runtime in a worker
thread) materialises one under the sandbox's directory with the kubelet's atomic layout::

    <volume>/..2026_07_30_10_00_03.123456/<files>   the current generation
    <volume>/..data -> ..2026_07_30_10_00_03.123456
    <volume>/<top-level name> -> ..data/<top-level name>

so an update (a new generation, then one ``rename`` of the ``..data`` link) is seen by a reader
all at once.  Volume kinds the process runtime cannot provide (hostPath excepted: it is the host
directory itself) are reported as unsupported, never silently empty.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .api import VolumeContent, VolumeFile
from .downward import DownwardError, PodFacts, field_ref_value, resource_field_value

__all__ = [
    "ObjectLookup",
    "UnsupportedVolume",
    "VolumeSourceMissing",
    "resolve_volumes",
    "write_volume",
]

_DEFAULT_MODE = 0o644


class VolumeSourceMissing(Exception):
    """A volume's source is not there (yet): ``volume`` cannot be set up.  The message is the
    kubelet's FailedMount text."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


class UnsupportedVolume(VolumeSourceMissing):
    """A volume type this node cannot provide (persistentVolumeClaim, nfs, ...)."""


class ObjectLookup(Protocol):
    """What resolving volumes (and environment variables) needs from the cluster: the agent
    answers from its informer caches and the TokenRequest API.  None means "does not exist"."""

    async def configmap(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    async def secret(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    async def service_account_token(self, pod: Mapping[str, Any], *, audience: str,
                                    expiration_seconds: int) -> str | None: ...


async def resolve_volumes(pod: Mapping[str, Any], lookup: ObjectLookup,
                          facts: PodFacts) -> list[VolumeContent]:
    """The contents of every volume of ``pod`` the runtime materialises (hostPath volumes are
    not among them: they are host directories already)."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name", "")
        if "hostPath" in volume:
            continue
        if "emptyDir" in volume:
            medium = (volume.get("emptyDir") or {}).get("medium", "")
            out.append(VolumeContent(name=name, kind="emptyDir", medium=medium))
            continue
        for kind in ("configMap", "secret", "downwardAPI", "projected"):
            if kind in volume:
                source = volume.get(kind) or {}
                files = await _files(kind, source, name, pod, lookup, facts,
                                     source.get("defaultMode", _DEFAULT_MODE))
                out.append(VolumeContent(name=name, kind=kind, files=tuple(files)))
                break
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise UnsupportedVolume(name, f"volume type {', '.join(kinds) or '?'} is not "
                                          "supported by this node's runtime")
    return out


async def _files(kind: str, source: Mapping[str, Any], volume: str, pod: Mapping[str, Any],
                 lookup: ObjectLookup, facts: PodFacts, mode: int) -> list[VolumeFile]:
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    if kind == "configMap":
        obj = await lookup.configmap(namespace, source.get("name", ""))
        return _key_files(volume, "configmap", source, obj, _configmap_data(obj), mode)
    if kind == "secret":
        name = source.get("secretName", "")
        obj = await lookup.secret(namespace, name)
        return _key_files(volume, "secret", {**source, "name": name}, obj, _secret_data(obj),
                          mode)
    if kind == "downwardAPI":
        return _downward_files(volume, source.get("items") or [], pod, facts, mode)
    files: list[VolumeFile] = []
    for projection in source.get("sources") or []:
        for sub in ("configMap", "secret", "downwardAPI"):
            if sub in projection:
                files += await _files(sub, projection[sub] or {}, volume, pod, lookup, facts,
                                      mode)
        if "serviceAccountToken" in projection:
            tok = projection["serviceAccountToken"] or {}
            token = await lookup.service_account_token(
                pod, audience=tok.get("audience", ""),
                expiration_seconds=int(tok.get("expirationSeconds") or 3600))
            if token is None:
                raise VolumeSourceMissing(volume, "failed to fetch token: the service account "
                                                  "token could not be obtained")
            files.append(VolumeFile(tok.get("path", "token"), token.encode(), 0o600
                                    if mode == _DEFAULT_MODE else mode))
    return files


def _configmap_data(obj: Mapping[str, Any] | None) -> dict[str, bytes]:
    if obj is None:
        return {}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _secret_data(obj: Mapping[str, Any] | None) -> dict[str, bytes]:
    if obj is None:
        return {}
    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
    return data


def _key_files(volume: str, what: str, source: Mapping[str, Any],
               obj: Mapping[str, Any] | None, data: dict[str, bytes],
               default_mode: int) -> list[VolumeFile]:
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return []
        raise VolumeSourceMissing(volume, f'{what} "{source.get("name", "")}" not found')
    items = source.get("items")
    if not items:
        return [VolumeFile(k, v, default_mode) for k, v in sorted(data.items())]
    files = []
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise VolumeSourceMissing(volume, f"{what} references non-existent config key: "
                                              f"{key}")
        files.append(VolumeFile(item.get("path") or key, data[key],
                                int(item.get("mode", default_mode))))
    return files


def _downward_files(volume: str, items: Sequence[Mapping[str, Any]], pod: Mapping[str, Any],
                    facts: PodFacts, default_mode: int) -> list[VolumeFile]:
    files = []
    for item in items:
        try:
            if "fieldRef" in item:
                value = field_ref_value(pod, (item["fieldRef"] or {}).get("fieldPath", ""),
                                        facts)
            else:
                ref = item.get("resourceFieldRef") or {}
                value = resource_field_value(pod, ref.get("containerName", ""),
                                             ref.get("resource", ""), ref.get("divisor"), facts)
        except DownwardError as e:
            raise VolumeSourceMissing(volume, str(e)) from e
        files.append(VolumeFile(item.get("path", ""), value.encode(),
                                int(item.get("mode", default_mode))))
    return files


# --- materialising ---------------------------------------------------------------------------


def write_volume(directory: str, content: VolumeContent, *, now: dt.datetime | None = None) -> None:
    """Create or update the volume at ``directory`` (see the module's layout).  An emptyDir is
    created once and never touched again.  Blocking: run it in a worker thread."""
    os.makedirs(directory, exist_ok=True)
    if content.kind == "emptyDir":
        return
    now = now or dt.datetime.now(dt.UTC)
    generation = ".." + now.strftime("%Y_%m_%d_%H_%M_%S.%f")
    gen_dir = os.path.join(directory, generation)
    while os.path.exists(gen_dir):
        gen_dir += "_"
        generation += "_"
    os.makedirs(gen_dir)
    tops = set()
    for f in content.files:
        rel = os.path.normpath(f.path)
        if rel.startswith("..") or os.path.isabs(rel):
            raise ValueError(f"volume {content.name}: file path {f.path!r} leaves the volume")
        full = os.path.join(gen_dir, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as out:
            out.write(f.data)
        os.chmod(full, f.mode)
        tops.add(rel.split(os.sep, 1)[0])
    data_link = os.path.join(directory, "..data")
    old = os.readlink(data_link) if os.path.islink(data_link) else None
    tmp_link = os.path.join(directory, "..data_tmp")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(generation, tmp_link)
    os.replace(tmp_link, data_link)
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if entry.startswith(".."):
            continue
        if entry not in tops and os.path.islink(path):
            os.unlink(path)
    for top in tops:
        link = os.path.join(directory, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", top), link)
    if old and old != generation:
        shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
