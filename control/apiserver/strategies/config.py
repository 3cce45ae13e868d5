"""ConfigMaps and Secrets: key/value data mounted as files, so keys must be file names,
the whole is at most 1 MiB, and ``immutable: true`` freezes it.

Secret ``data`` values are base64 (JSON's encoding of bytes); ``stringData`` is a write-only
convenience merged into ``data`` and dropped, as kube-apiserver's conversion does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .base import BaseStrategy
from .causes import forbidden, immutable, invalid, key, required, too_long
from .names import config_key

__all__ = ["MAX_SIZE", "ConfigMapStrategy", "SecretStrategy"]

MAX_SIZE = 1024 * 1024
_REDACTED = "<secret contents redacted>"
_FROZEN = "field is immutable when `immutable` is set"
#: Secret type → (keys required in data, whether any one of them is enough).
_TYPE_KEYS: dict[str, tuple[tuple[str, ...], bool]] = {
    "kubernetes.io/dockercfg": ((".dockercfg",), False),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",), False),
    "kubernetes.io/basic-auth": (("username", "password"), True),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",), False),
    "kubernetes.io/tls": (("tls.crt", "tls.key"), False),
}
_SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def _map(obj: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = obj.get(field)
    return value if isinstance(value, Mapping) else {}


def _validate_keys(data: Mapping[str, Any], field: str) -> list[Cause]:
    return [invalid(key(field, k), k, msg) for k in data for msg in config_key(str(k))]


def _decoded(value: Any) -> bytes | None:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def _frozen_errors(new: Mapping[str, Any], old: Mapping[str, Any],
                   fields: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    return [forbidden(f, _FROZEN) for f in ("immutable", *fields) if new.get(f) != old.get(f)]


class ConfigMapStrategy(BaseStrategy):
    """ConfigMaps: ``data`` (strings) and ``binaryData`` (base64) with disjoint valid keys."""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        data, binary = _map(obj, "data"), _map(obj, "binaryData")
        errs = _validate_keys(data, "data") + _validate_keys(binary, "binaryData")
        errs += [invalid("binaryData", k, "duplicate of key present in data")
                 for k in binary if k in data]
        size = sum(len(str(v).encode()) for v in data.values())
        for k, v in binary.items():
            raw = _decoded(v)
            if raw is None:
                errs.append(invalid(key("binaryData", k), v, "illegal base64 data"))
            size += len(raw or b"")
        if size > MAX_SIZE:
            errs.append(too_long("", MAX_SIZE))
        return errs

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return _frozen_errors(new, old, ("data", "binaryData"))


class SecretStrategy(BaseStrategy):
    """Secrets: type defaults to Opaque and never changes; each type needs its keys."""

    def default(self, obj: dict[str, Any]) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, Mapping) and string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        data = _map(obj, "data")
        errs = _validate_keys(data, "data")
        size = 0
        for k, v in data.items():
            raw = _decoded(v)
            if raw is None:
                errs.append(invalid(key("data", k), _REDACTED, "illegal base64 data"))
            size += len(raw or b"")
        if size > MAX_SIZE:
            errs.append(too_long("data", MAX_SIZE))
        return errs + self._validate_type(obj, data)

    @staticmethod
    def _validate_type(obj: Mapping[str, Any], data: Mapping[str, Any]) -> list[Cause]:
        kind = obj.get("type")
        if kind == "kubernetes.io/service-account-token":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if not annotations.get(_SA_NAME_ANNOTATION):
                return [required(key("metadata.annotations", _SA_NAME_ANNOTATION))]
            return []
        keys, any_one = _TYPE_KEYS.get(str(kind), ((), False))
        missing = [k for k in keys if not data.get(k)]
        if not missing or (any_one and len(missing) < len(keys)):
            return []
        return [required(key("data", k)) for k in missing]

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        errs = _frozen_errors(new, old, ("data",))
        if new.get("type") != old.get("type"):
            errs.append(immutable("type", new.get("type")))
        return errs
