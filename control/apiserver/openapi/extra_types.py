"""Field lists for types the OpenAPI documents describe but the protobuf tables do not (yet).

The protobuf decoder only needs the kinds kubectl sends as protobuf; OpenAPI must describe every
served kind, plus ``Status`` and ``ListMeta``. These lists use the same `F` notation as
``control.api.kinds.schema_*`` but carry no field numbers: they never reach a wire decoder.
A message present in ``control.apiserver.protobuf.MESSAGES`` always wins over an entry here, so adding a
kind to the protobuf tables silently retires its entry below.

JSON names, pointer-ness and list-ness follow the Go types in k8s.io/api core/v1 and
k8s.io/apimachinery meta/v1.
"""

from __future__ import annotations

from control.api.kinds.fields import F, Field

__all__ = ["EXTRA_KINDS", "EXTRA_MESSAGES"]

_Q = "map<string,resource.Quantity>"
_META = F("metadata", "meta.v1.ObjectMeta")

# fmt: off
EXTRA_MESSAGES: dict[str, tuple[Field, ...]] = {
    # meta/v1
    "meta.v1.ListMeta": (
        F("selfLink"), F("resourceVersion"), F("continue"), F("remainingItemCount", "int64", "p"),
    ),
    "meta.v1.Status": (
        F("metadata", "meta.v1.ListMeta"), F("status"), F("message"), F("reason"),
        F("details", "meta.v1.StatusDetails", "p"), F("code", "int32"),
    ),
    "meta.v1.StatusDetails": (
        F("name"), F("group"), F("kind"), F("uid"), F("causes", "meta.v1.StatusCause", "r"),
        F("retryAfterSeconds", "int32"),
    ),
    "meta.v1.StatusCause": (F("reason"), F("message"), F("field")),
    # core/v1 Node
    "core.v1.Node": (_META, F("spec", "core.v1.NodeSpec"), F("status", "core.v1.NodeStatus")),
    "core.v1.NodeSpec": (
        F("podCIDR"), F("podCIDRs", "string", "r"), F("providerID"), F("unschedulable", "bool"),
        F("taints", "core.v1.Taint", "r"), F("configSource", "core.v1.NodeConfigSource", "p"),
        F("externalID"),
    ),
    "core.v1.Taint": (
        F("key", "string", "k"), F("value"), F("effect", "string", "k"),
        F("timeAdded", "meta.v1.Time", "p"),
    ),
    "core.v1.NodeConfigSource": (F("configMap", "core.v1.ConfigMapNodeConfigSource", "p"),),
    "core.v1.ConfigMapNodeConfigSource": (
        F("namespace", "string", "k"), F("name", "string", "k"), F("uid"), F("resourceVersion"),
        F("kubeletConfigKey", "string", "k"),
    ),
    "core.v1.NodeStatus": (
        F("capacity", _Q), F("allocatable", _Q), F("phase"),
        F("conditions", "core.v1.NodeCondition", "r"), F("addresses", "core.v1.NodeAddress", "r"),
        F("daemonEndpoints", "core.v1.NodeDaemonEndpoints"),
        F("nodeInfo", "core.v1.NodeSystemInfo"), F("images", "core.v1.ContainerImage", "r"),
        F("volumesInUse", "string", "r"), F("volumesAttached", "core.v1.AttachedVolume", "r"),
        F("config", "core.v1.NodeConfigStatus", "p"),
        F("runtimeHandlers", "core.v1.NodeRuntimeHandler", "r"),
        F("features", "core.v1.NodeFeatures", "p"), F("declaredFeatures", "string", "r"),
    ),
    "core.v1.NodeCondition": (
        F("type", "string", "k"), F("status", "string", "k"),
        F("lastHeartbeatTime", "meta.v1.Time"), F("lastTransitionTime", "meta.v1.Time"),
        F("reason"), F("message"),
    ),
    "core.v1.NodeAddress": (F("type", "string", "k"), F("address", "string", "k")),
    "core.v1.NodeDaemonEndpoints": (F("kubeletEndpoint", "core.v1.DaemonEndpoint"),),
    "core.v1.DaemonEndpoint": (F("Port", "int32", "k"),),
    "core.v1.NodeSystemInfo": (
        F("machineID", "string", "k"), F("systemUUID", "string", "k"), F("bootID", "string", "k"),
        F("kernelVersion", "string", "k"), F("osImage", "string", "k"),
        F("containerRuntimeVersion", "string", "k"), F("kubeletVersion", "string", "k"),
        F("kubeProxyVersion", "string", "k"), F("operatingSystem", "string", "k"),
        F("architecture", "string", "k"), F("swap", "core.v1.NodeSwapStatus", "p"),
    ),
    "core.v1.NodeSwapStatus": (F("capacity", "int64", "p"),),
    "core.v1.ContainerImage": (F("names", "string", "r"), F("sizeBytes", "int64")),
    "core.v1.AttachedVolume": (F("name", "string", "k"), F("devicePath", "string", "k")),
    "core.v1.NodeConfigStatus": (
        F("assigned", "core.v1.NodeConfigSource", "p"), F("active", "core.v1.NodeConfigSource", "p"),
        F("lastKnownGood", "core.v1.NodeConfigSource", "p"), F("error"),
    ),
    "core.v1.NodeRuntimeHandler": (
        F("name"), F("features", "core.v1.NodeRuntimeHandlerFeatures", "p"),
    ),
    "core.v1.NodeRuntimeHandlerFeatures": (
        F("recursiveReadOnlyMounts", "bool", "p"), F("userNamespaces", "bool", "p"),
    ),
    "core.v1.NodeFeatures": (F("supplementalGroupsPolicy", "bool", "p"),),
    # core/v1 Endpoints
    "core.v1.Endpoints": (_META, F("subsets", "core.v1.EndpointSubset", "r")),
    "core.v1.EndpointSubset": (
        F("addresses", "core.v1.EndpointAddress", "r"),
        F("notReadyAddresses", "core.v1.EndpointAddress", "r"),
        F("ports", "core.v1.EndpointPort", "r"),
    ),
    "core.v1.EndpointAddress": (
        F("ip", "string", "k"), F("hostname"), F("nodeName", "string", "p"),
        F("targetRef", "core.v1.ObjectReference", "p"),
    ),
    "core.v1.EndpointPort": (
        F("name"), F("port", "int32", "k"), F("protocol"), F("appProtocol", "string", "p"),
    ),
    # core/v1 Event
    "core.v1.Event": (
        _META, F("involvedObject", "core.v1.ObjectReference"), F("reason"), F("message"),
        F("source", "core.v1.EventSource"), F("firstTimestamp", "meta.v1.Time"),
        F("lastTimestamp", "meta.v1.Time"), F("count", "int32"), F("type"),
        F("eventTime", "meta.v1.MicroTime"), F("series", "core.v1.EventSeries", "p"),
        F("action"), F("related", "core.v1.ObjectReference", "p"), F("reportingComponent"),
        F("reportingInstance"),
    ),
    "core.v1.EventSource": (F("component"), F("host")),
    "core.v1.EventSeries": (F("count", "int32"), F("lastObservedTime", "meta.v1.MicroTime")),
    # core/v1 LimitRange
    "core.v1.LimitRange": (_META, F("spec", "core.v1.LimitRangeSpec")),
    "core.v1.LimitRangeSpec": (F("limits", "core.v1.LimitRangeItem", "r"),),
    "core.v1.LimitRangeItem": (
        F("type"), F("max", _Q), F("min", _Q), F("default", _Q), F("defaultRequest", _Q),
        F("maxLimitRequestRatio", _Q),
    ),
}
# fmt: on

#: Top-level ``(apiVersion, kind)`` -> message, for kinds the protobuf ``KINDS`` lacks.
EXTRA_KINDS: dict[tuple[str, str], str] = {
    ("v1", "Node"): "core.v1.Node",
    ("v1", "Endpoints"): "core.v1.Endpoints",
    ("v1", "Event"): "core.v1.Event",
    ("v1", "LimitRange"): "core.v1.LimitRange",
    ("v1", "Status"): "meta.v1.Status",
}
