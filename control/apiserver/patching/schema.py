"""Strategic-merge-patch metadata per kind: how each list (and retainKeys map) is patched.

This is the data Kubernetes keeps in the `patchStrategy` / `patchMergeKey` struct tags of
k8s.io/api.  A kind's table maps a field path to a `FieldStrategy`; paths are dotted field
names from the object's root, and a list's items are entered without an index, so
`spec.containers.env` is the `env` list of every container.  Any list not in a table is
atomic (the patch's list replaces the live one), as it is in Kubernetes.

Adding a kind is adding data: compose `merged(...)` from the shared tables below and register
it in `KIND_SCHEMAS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "ATOMIC",
    "DEFAULT_SCHEMA",
    "KIND_SCHEMAS",
    "PRIMITIVE_MERGE",
    "RETAIN_KEYS",
    "FieldStrategy",
    "PatchSchema",
    "merge_by",
    "merged",
    "schema_for",
    "under",
]

Path = tuple[str, ...]


@dataclass(frozen=True)
class FieldStrategy:
    """How one field is patched.

    `merge` with a `merge_key`: a list of maps merged item by item on that key.  `merge`
    without one: a list of scalars merged as a set (`$deleteFromPrimitiveList` removes).
    Neither: atomic, the patch's value replaces.  `retain_keys` records Kubernetes'
    `retainKeys` strategy; the applier honours a `$retainKeys` directive wherever it appears,
    so the flag informs patch producers, not the applier.
    """

    merge: bool = False
    merge_key: str | None = None
    retain_keys: bool = False


ATOMIC = FieldStrategy()
PRIMITIVE_MERGE = FieldStrategy(merge=True)
RETAIN_KEYS = FieldStrategy(retain_keys=True)


def merge_by(key: str, *, retain_keys: bool = False) -> FieldStrategy:
    """A list of maps merged on `key` (Kubernetes: `patchStrategy:"merge" patchMergeKey:key`)."""
    return FieldStrategy(merge=True, merge_key=key, retain_keys=retain_keys)


@dataclass(frozen=True)
class PatchSchema:
    """A kind's patch metadata: field path → strategy; everything absent is atomic."""

    fields: Mapping[Path, FieldStrategy] = field(default_factory=dict)

    def strategy_for(self, path: Path) -> FieldStrategy:
        """The strategy of the field at `path` (field names from the root, no list indices)."""
        return self.fields.get(path, ATOMIC)


Table = Mapping[str, FieldStrategy]


def under(prefix: str, table: Table) -> dict[str, FieldStrategy]:
    """`table` moved below the dotted `prefix`."""
    return {f"{prefix}.{path}": strategy for path, strategy in table.items()}


def merged(*tables: Table) -> PatchSchema:
    """One schema from dotted-path tables; a path given twice must agree."""
    fields: dict[Path, FieldStrategy] = {}
    for table in tables:
        for dotted, strategy in table.items():
            path = tuple(dotted.split("."))
            if fields.get(path, strategy) != strategy:
                raise ValueError(f"conflicting patch strategies for {dotted}")
            fields[path] = strategy
    return PatchSchema(MappingProxyType(fields))


# ObjectMeta, wherever it appears.
OBJECT_META: Table = {
    "finalizers": PRIMITIVE_MERGE,
    "ownerReferences": merge_by("uid"),
}

# Container (and EphemeralContainerCommon).  args, command, envFrom, resizePolicy are atomic.
CONTAINER: Table = {
    "ports": merge_by("containerPort"),
    "env": merge_by("name"),
    "volumeMounts": merge_by("mountPath"),
    "volumeDevices": merge_by("devicePath"),
    "args": ATOMIC,
    "command": ATOMIC,
}

POD_SPEC: Table = {
    "containers": merge_by("name"),
    **under("containers", CONTAINER),
    "initContainers": merge_by("name"),
    **under("initContainers", CONTAINER),
    "ephemeralContainers": merge_by("name"),
    **under("ephemeralContainers", CONTAINER),
    "volumes": merge_by("name", retain_keys=True),
    "imagePullSecrets": merge_by("name"),
    "hostAliases": merge_by("ip"),
    "topologySpreadConstraints": merge_by("topologyKey"),
    "schedulingGates": merge_by("name"),
    "resourceClaims": merge_by("name", retain_keys=True),
    "tolerations": ATOMIC,
}

POD_STATUS: Table = {
    "conditions": merge_by("type"),
    "podIPs": merge_by("ip"),
    "hostIPs": merge_by("ip"),
    "resourceClaimStatuses": merge_by("name", retain_keys=True),
}

POD_TEMPLATE: Table = {**under("metadata", OBJECT_META), **under("spec", POD_SPEC)}

CONDITIONS_BY_TYPE: Table = {"conditions": merge_by("type")}


def _workload(**extra: FieldStrategy) -> PatchSchema:
    """A controller whose pod template is at spec.template and whose status has conditions."""
    return merged(
        under("metadata", OBJECT_META),
        under("spec.template", POD_TEMPLATE),
        under("status", CONDITIONS_BY_TYPE),
        extra,
    )


DEFAULT_SCHEMA = merged(under("metadata", OBJECT_META))
"""For kinds with no list of their own to merge: ConfigMap, Secret, Event, Lease, RBAC…"""

KIND_SCHEMAS: Mapping[str, PatchSchema] = MappingProxyType(
    {
        "Pod": merged(
            under("metadata", OBJECT_META), under("spec", POD_SPEC), under("status", POD_STATUS)
        ),
        "PodTemplate": merged(under("metadata", OBJECT_META), under("template", POD_TEMPLATE)),
        "Deployment": _workload(**{"spec.strategy": RETAIN_KEYS}),
        "ReplicaSet": _workload(),
        "DaemonSet": _workload(),
        "StatefulSet": _workload(),
        "Job": _workload(),
        "CronJob": merged(
            under("metadata", OBJECT_META),
            under("spec.jobTemplate.metadata", OBJECT_META),
            under("spec.jobTemplate.spec.template", POD_TEMPLATE),
        ),
        "Service": merged(
            under("metadata", OBJECT_META),
            {"spec.ports": merge_by("port")},
            under("status", CONDITIONS_BY_TYPE),
        ),
        "Node": merged(
            under("metadata", OBJECT_META),
            {"spec.podCIDRs": PRIMITIVE_MERGE, "spec.taints": ATOMIC},
            {"status.conditions": merge_by("type"), "status.addresses": merge_by("type")},
        ),
        "Namespace": merged(under("metadata", OBJECT_META), under("status", CONDITIONS_BY_TYPE)),
        "ServiceAccount": merged(under("metadata", OBJECT_META), {"secrets": merge_by("name")}),
        "PodDisruptionBudget": merged(
            under("metadata", OBJECT_META), under("status", CONDITIONS_BY_TYPE)
        ),
    }
)


def schema_for(kind: str) -> PatchSchema:
    """The schema for `kind` (e.g. "Deployment"), or `DEFAULT_SCHEMA` (metadata only)."""
    return KIND_SCHEMAS.get(kind, DEFAULT_SCHEMA)
