"""Protobuf field tables, as data: meta/v1 and related groups.

Groups: meta/v1, intstr, resource and runtime helpers (k8s.io/apimachinery).

Field numbers and types are those of the published k8s.io/apimachinery ``generated.proto`` files; JSON
names, pointer-ness and ``omitempty`` come from the matching Go struct tags (snapshot
eed236ceee2c). Notation: see control.api.kinds.fields.F.
"""

from __future__ import annotations

from control.api.kinds.fields import F, Field

__all__ = ["META_MESSAGES"]

# fmt: off
META_MESSAGES: dict[str, dict[int, Field]] = {
    "intstr.IntOrString": {1: F("type", "int64"), 2: F("intVal", "int32"), 3: F("strVal")},
    "meta.v1.Condition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("observedGeneration", "int64"), 4: F("lastTransitionTime", "meta.v1.Time"),
        5: F("reason", "string", "k"), 6: F("message", "string", "k"),
    },
    "meta.v1.DeleteOptions": {
        1: F("gracePeriodSeconds", "int64", "p"),
        2: F("preconditions", "meta.v1.Preconditions", "p"), 3: F("orphanDependents", "bool", "p"),
        4: F("propagationPolicy", "string", "p"), 5: F("dryRun", "string", "r"),
        6: F("ignoreStoreReadErrorWithClusterBreakingPotential", "bool", "p"),
    },
    "meta.v1.FieldSelectorRequirement": {
        1: F("key", "string", "k"), 2: F("operator", "string", "k"), 3: F("values", "string", "r"),
    },
    "meta.v1.FieldsV1": {1: F("Raw", "bytes")},
    "meta.v1.LabelSelector": {
        1: F("matchLabels", "map<string,string>"),
        2: F("matchExpressions", "meta.v1.LabelSelectorRequirement", "r"),
    },
    "meta.v1.LabelSelectorRequirement": {
        1: F("key", "string", "k"), 2: F("operator", "string", "k"), 3: F("values", "string", "r"),
    },
    "meta.v1.ManagedFieldsEntry": {
        1: F("manager"), 2: F("operation"), 3: F("apiVersion"), 4: F("time", "meta.v1.Time", "p"),
        6: F("fieldsType"), 7: F("fieldsV1", "meta.v1.FieldsV1", "p"), 8: F("subresource"),
    },
    "meta.v1.MicroTime": {1: F("seconds", "int64"), 2: F("nanos", "int32")},
    "meta.v1.ObjectMeta": {
        1: F("name"), 2: F("generateName"), 3: F("namespace"), 4: F("selfLink"), 5: F("uid"),
        6: F("resourceVersion"), 7: F("generation", "int64"),
        8: F("creationTimestamp", "meta.v1.Time"), 9: F("deletionTimestamp", "meta.v1.Time", "p"),
        10: F("deletionGracePeriodSeconds", "int64", "p"), 11: F("labels", "map<string,string>"),
        12: F("annotations", "map<string,string>"),
        13: F("ownerReferences", "meta.v1.OwnerReference", "r"), 14: F("finalizers", "string", "r"),
        17: F("managedFields", "meta.v1.ManagedFieldsEntry", "r"),
    },
    "meta.v1.OwnerReference": {
        1: F("kind", "string", "k"), 3: F("name", "string", "k"), 4: F("uid", "string", "k"),
        5: F("apiVersion", "string", "k"), 6: F("controller", "bool", "p"),
        7: F("blockOwnerDeletion", "bool", "p"),
    },
    "meta.v1.Preconditions": {1: F("uid", "string", "p"), 2: F("resourceVersion", "string", "p")},
    "meta.v1.Time": {1: F("seconds", "int64"), 2: F("nanos", "int32")},
    "resource.Quantity": {1: F("string")},
    "runtime.RawExtension": {1: F("raw", "bytes")},
}
# fmt: on
