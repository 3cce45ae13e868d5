"""The protobuf schema the decoder walks: every message table, the special JSON forms, the kinds.

`MESSAGES` joins the per-group tables (``schema_*`` modules) into one map from message name to
``{field number: Field}``. `SPECIAL_FORMS` names the messages whose JSON form is not an object
(``meta.v1.Time`` is an RFC 3339 string, ``intstr.IntOrString`` an int or a string, …).
`KINDS` maps a top-level ``(apiVersion, kind)`` to its message: only these can be request
bodies. `validate_schema` checks that every reference resolves; the package runs it at import,
so a typo in a table is an import error rather than a runtime surprise.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from typing import Any

from control.api.kinds.fields import SCALAR_TYPES, Field
from control.api.kinds.schema_apps import APPS_MESSAGES
from control.api.kinds.schema_auth import AUTH_MESSAGES
from control.api.kinds.schema_core import CORE_MESSAGES
from control.api.kinds.schema_meta import META_MESSAGES
from control.api.kinds.schema_pod import POD_MESSAGES
from control.api.kinds.schema_volumes import VOLUME_MESSAGES

__all__ = [
    "KINDS",
    "MESSAGES",
    "SPECIAL_FORMS",
    "message_for",
    "supported_kinds",
    "validate_schema",
    "zero_fields",
]


def _merge(*tables: Mapping[str, dict[int, Field]]) -> dict[str, dict[int, Field]]:
    merged: dict[str, dict[int, Field]] = {}
    for table in tables:
        for name, fields in table.items():
            if name in merged:
                raise ValueError(f"message {name} is defined twice")
            merged[name] = fields
    return merged


MESSAGES: dict[str, dict[int, Field]] = _merge(
    META_MESSAGES,
    CORE_MESSAGES,
    POD_MESSAGES,
    VOLUME_MESSAGES,
    APPS_MESSAGES,
    AUTH_MESSAGES,
)

# Messages whose JSON is not an object. The decoder reads them with their table, then converts.
SPECIAL_FORMS: dict[str, str] = {
    "meta.v1.Time": "time",  # RFC 3339 seconds; empty message (zero time) -> absent
    "meta.v1.MicroTime": "micro_time",  # RFC 3339 with microseconds
    "intstr.IntOrString": "int_or_string",
    "resource.Quantity": "quantity",
    "meta.v1.FieldsV1": "raw_json",
    "runtime.RawExtension": "raw_json",
    "authorization.v1.ExtraValue": "string_list",  # Go: type ExtraValue []string
    "authentication.v1.ExtraValue": "string_list",
    "authentication.v1.AttestationValue": "string_list",
}

_GROUP_VERSIONS: dict[str, str] = {
    "v1": "core.v1",
    "apps/v1": "apps.v1",
    "batch/v1": "batch.v1",
    "autoscaling/v1": "autoscaling.v1",
    "authorization.k8s.io/v1": "authorization.v1",
    "authentication.k8s.io/v1": "authentication.v1",
    "rbac.authorization.k8s.io/v1": "rbac.v1",
    "coordination.k8s.io/v1": "coordination.v1",
    "policy/v1": "policy.v1",
    "scheduling.k8s.io/v1": "scheduling.v1",
    "networking.k8s.io/v1": "networking.v1",
    "discovery.k8s.io/v1": "discovery.v1",
}

_TOP_LEVEL: dict[str, tuple[str, ...]] = {
    "v1": (
        "Binding",
        "ConfigMap",
        "Namespace",
        "PersistentVolumeClaim",
        "Pod",
        "ResourceQuota",
        "Secret",
        "Service",
        "ServiceAccount",
    ),
    "apps/v1": ("ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"),
    "batch/v1": ("CronJob", "Job"),
    "autoscaling/v1": ("HorizontalPodAutoscaler", "Scale"),
    "authorization.k8s.io/v1": (
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    ),
    "authentication.k8s.io/v1": ("SelfSubjectReview", "TokenRequest", "TokenReview"),
    "rbac.authorization.k8s.io/v1": ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"),
    "coordination.k8s.io/v1": ("Lease",),
    "policy/v1": ("Eviction", "PodDisruptionBudget"),
    "scheduling.k8s.io/v1": ("PriorityClass",),
    "networking.k8s.io/v1": ("Ingress",),
    "discovery.k8s.io/v1": ("EndpointSlice",),
}


def _build_kinds() -> dict[tuple[str, str], str]:
    kinds: dict[tuple[str, str], str] = {}
    for api_version, names in _TOP_LEVEL.items():
        package = _GROUP_VERSIONS[api_version]
        for kind in names:
            kinds[(api_version, kind)] = f"{package}.{kind}"
        # metav1.AddToGroupVersion registers DeleteOptions in every group version.
        kinds[(api_version, "DeleteOptions")] = "meta.v1.DeleteOptions"
    kinds[("meta.k8s.io/v1", "DeleteOptions")] = "meta.v1.DeleteOptions"
    return kinds


KINDS: dict[tuple[str, str], str] = _build_kinds()


def message_for(api_version: str, kind: str) -> str | None:
    """The message name for a top-level ``(apiVersion, kind)``, or None when unsupported."""
    return KINDS.get((api_version, kind))


@functools.cache
def zero_fields(message: str) -> Mapping[str, Any]:
    """The scalar fields of ``message`` Go always writes in JSON (no ``omitempty``, not a
    pointer) with their zero values: ``apps.v1.ReplicaSetStatus`` gives ``{"replicas": 0}``,
    which clients that model the field as required (the Python client) insist on."""
    zeros: dict[str, Any] = {}
    for field in MESSAGES[message].values():
        if field.keep_zero and not field.pointer and not field.repeated \
                and field.type in SCALAR_TYPES:
            zeros[field.name] = (False if field.type == "bool"
                                 else "" if field.type in ("string", "bytes") else 0)
    return types.MappingProxyType(zeros)


def supported_kinds() -> list[str]:
    """``apiVersion/Kind`` of every supported request body (DeleteOptions once), sorted."""
    names = {f"{av}/{kind}" for av, kind in KINDS if kind != "DeleteOptions"}
    return sorted(names | {"meta.k8s.io/v1/DeleteOptions"})


def validate_schema(messages: Mapping[str, Mapping[int, Field]] = MESSAGES) -> None:
    """Check the tables are closed and well formed; raise ValueError naming the first problem.

    Guarantees after success: every message reference (field, map value, kind, special form)
    names a table; field numbers are valid protobuf numbers; no message has two fields with the
    same JSON name; inline fields are singular messages; special forms hold only scalars.
    """
    for name, fields in messages.items():
        seen: set[str] = set()
        for number, field in fields.items():
            where = f"{name}.{number} ({field.name or 'inline'})"
            if not 1 <= number < (1 << 29):
                raise ValueError(f"{where}: bad field number")
            if field.type == "message":
                if not isinstance(field.ref, str) or field.ref not in messages:
                    raise ValueError(f"{where}: unknown message {field.ref!r}")
            elif field.type == "map":
                if not isinstance(field.ref, tuple):
                    raise ValueError(f"{where}: map without key/value types")
                value = field.ref[1]
                if value not in SCALAR_TYPES and value not in messages:
                    raise ValueError(f"{where}: unknown map value type {value!r}")
            elif field.type not in SCALAR_TYPES:
                raise ValueError(f"{where}: unknown type {field.type!r}")
            if field.inline and (field.type != "message" or field.repeated):
                raise ValueError(f"{where}: inline field must be a singular message")
            if field.name and field.name in seen:
                raise ValueError(f"{where}: duplicate JSON name")
            seen.add(field.name)
    for message in list(KINDS.values()) + list(SPECIAL_FORMS):
        if message not in messages:
            raise ValueError(f"unknown message {message!r}")
    for message in SPECIAL_FORMS:
        if any(f.type not in SCALAR_TYPES for f in messages[message].values()):
            raise ValueError(f"special message {message!r} must hold only scalars")
