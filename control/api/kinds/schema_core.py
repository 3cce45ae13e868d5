"""Protobuf field tables, as data: core/v1 objects other than the pod spec and volumes.

Field numbers and types are those of the published k8s.io/api ``generated.proto`` files; JSON
names, pointer-ness and ``omitempty`` come from the matching Go struct tags (snapshot
10b39a39bcee). Notation: see control.api.kinds.fields.F.
"""

from __future__ import annotations

from control.api.kinds.fields import F, Field

__all__ = ["CORE_MESSAGES"]

# fmt: off
CORE_MESSAGES: dict[str, dict[int, Field]] = {
    "core.v1.Binding": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("target", "core.v1.ObjectReference"),
    },
    "core.v1.ClientIPConfig": {1: F("timeoutSeconds", "int32", "p")},
    "core.v1.ConfigMap": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("data", "map<string,string>"),
        3: F("binaryData", "map<string,bytes>"), 4: F("immutable", "bool", "p"),
    },
    "core.v1.ContainerExtendedResourceRequest": {
        1: F("containerName", "string", "k"), 2: F("resourceName", "string", "k"),
        3: F("requestName", "string", "k"),
    },
    "core.v1.ContainerState": {
        1: F("waiting", "core.v1.ContainerStateWaiting", "p"),
        2: F("running", "core.v1.ContainerStateRunning", "p"),
        3: F("terminated", "core.v1.ContainerStateTerminated", "p"),
    },
    "core.v1.ContainerStateRunning": {1: F("startedAt", "meta.v1.Time")},
    "core.v1.ContainerStateTerminated": {
        1: F("exitCode", "int32", "k"), 2: F("signal", "int32"), 3: F("reason"), 4: F("message"),
        5: F("startedAt", "meta.v1.Time"), 6: F("finishedAt", "meta.v1.Time"), 7: F("containerID"),
    },
    "core.v1.ContainerStateWaiting": {1: F("reason"), 2: F("message")},
    "core.v1.ContainerStatus": {
        1: F("name", "string", "k"), 2: F("state", "core.v1.ContainerState"),
        3: F("lastState", "core.v1.ContainerState"), 4: F("ready", "bool", "k"),
        5: F("restartCount", "int32", "k"), 6: F("image", "string", "k"),
        7: F("imageID", "string", "k"), 8: F("containerID"), 9: F("started", "bool", "p"),
        10: F("allocatedResources", "map<string,resource.Quantity>"),
        11: F("resources", "core.v1.ResourceRequirements", "p"),
        12: F("volumeMounts", "core.v1.VolumeMountStatus", "r"),
        13: F("user", "core.v1.ContainerUser", "p"),
        14: F("allocatedResourcesStatus", "core.v1.ResourceStatus", "r"),
        15: F("stopSignal", "string", "p"),
    },
    "core.v1.ContainerUser": {1: F("linux", "core.v1.LinuxContainerUser", "p")},
    "core.v1.HostIP": {1: F("ip", "string", "k")},
    "core.v1.ImageVolumeStatus": {1: F("imageRef")},
    "core.v1.LinuxContainerUser": {
        1: F("uid", "int64", "k"), 2: F("gid", "int64", "k"),
        3: F("supplementalGroups", "int64", "r"),
    },
    "core.v1.LoadBalancerIngress": {
        1: F("ip"), 2: F("hostname"), 3: F("ipMode", "string", "p"),
        4: F("ports", "core.v1.PortStatus", "r"),
    },
    "core.v1.LoadBalancerStatus": {1: F("ingress", "core.v1.LoadBalancerIngress", "r")},
    "core.v1.Namespace": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "core.v1.NamespaceSpec"),
        3: F("status", "core.v1.NamespaceStatus"),
    },
    "core.v1.NamespaceCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        4: F("lastTransitionTime", "meta.v1.Time"), 5: F("reason"), 6: F("message"),
    },
    "core.v1.NamespaceSpec": {1: F("finalizers", "string", "r")},
    "core.v1.NamespaceStatus": {
        1: F("phase"), 2: F("conditions", "core.v1.NamespaceCondition", "r"),
    },
    "core.v1.NodeAllocatableMappedResources": {
        1: F("name", "string", "k"), 2: F("quantity", "resource.Quantity", "p"),
    },
    "core.v1.NodeAllocatableOverheadResources": {
        1: F("name", "string", "k"), 2: F("perPod", "resource.Quantity", "p"),
        3: F("perContainer", "resource.Quantity", "p"),
    },
    "core.v1.NodeAllocatableResourceClaimStatus": {
        1: F("resourceClaimName", "string", "k"), 2: F("containers", "string", "r"),
        4: F("mapping", "core.v1.NodeAllocatableMappedResources", "r"),
        5: F("overhead", "core.v1.NodeAllocatableOverheadResources", "r"),
    },
    "core.v1.ObjectReference": {
        1: F("kind"), 2: F("namespace"), 3: F("name"), 4: F("uid"), 5: F("apiVersion"),
        6: F("resourceVersion"), 7: F("fieldPath"),
    },
    "core.v1.Pod": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "core.v1.PodSpec"),
        3: F("status", "core.v1.PodStatus"),
    },
    "core.v1.PodCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("lastProbeTime", "meta.v1.Time"), 4: F("lastTransitionTime", "meta.v1.Time"),
        5: F("reason"), 6: F("message"), 7: F("observedGeneration", "int64"),
    },
    "core.v1.PodExtendedResourceClaimStatus": {
        1: F("requestMappings", "core.v1.ContainerExtendedResourceRequest", "r"),
        2: F("resourceClaimName", "string", "k"),
    },
    "core.v1.PodIP": {1: F("ip", "string", "k")},
    "core.v1.PodResourceClaimStatus": {
        1: F("name", "string", "k"), 2: F("resourceClaimName", "string", "p"),
    },
    "core.v1.PodStatus": {
        1: F("phase"), 2: F("conditions", "core.v1.PodCondition", "r"), 3: F("message"),
        4: F("reason"), 5: F("hostIP"), 6: F("podIP"), 7: F("startTime", "meta.v1.Time", "p"),
        8: F("containerStatuses", "core.v1.ContainerStatus", "r"), 9: F("qosClass"),
        10: F("initContainerStatuses", "core.v1.ContainerStatus", "r"), 11: F("nominatedNodeName"),
        12: F("podIPs", "core.v1.PodIP", "r"),
        13: F("ephemeralContainerStatuses", "core.v1.ContainerStatus", "r"), 14: F("resize"),
        15: F("resourceClaimStatuses", "core.v1.PodResourceClaimStatus", "r"),
        16: F("hostIPs", "core.v1.HostIP", "r"), 17: F("observedGeneration", "int64"),
        18: F("extendedResourceClaimStatus", "core.v1.PodExtendedResourceClaimStatus", "p"),
        19: F("allocatedResources", "map<string,resource.Quantity>"),
        20: F("resources", "core.v1.ResourceRequirements", "p"),
        21: F("nodeAllocatableResourceClaimStatuses", "core.v1.NodeAllocatableResourceClaimStatus", "r"),
        22: F("volumeHealth", "core.v1.PodVolumeHealth", "r"),
    },
    "core.v1.PodTemplateSpec": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "core.v1.PodSpec"),
    },
    "core.v1.PodVolumeHealth": {
        1: F("name", "string", "k"), 2: F("healthConditions", "core.v1.VolumeHealthCondition", "r"),
        3: F("lastTransitionTime", "meta.v1.Time"),
    },
    "core.v1.PortStatus": {
        1: F("port", "int32", "k"), 2: F("protocol", "string", "k"), 3: F("error", "string", "p"),
    },
    "core.v1.ResourceHealth": {
        1: F("resourceID", "string", "k"), 2: F("health"), 6: F("message", "string", "p"),
    },
    "core.v1.ResourceQuota": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "core.v1.ResourceQuotaSpec"),
        3: F("status", "core.v1.ResourceQuotaStatus"),
    },
    "core.v1.ResourceQuotaSpec": {
        1: F("hard", "map<string,resource.Quantity>"), 2: F("scopes", "string", "r"),
        3: F("scopeSelector", "core.v1.ScopeSelector", "p"),
    },
    "core.v1.ResourceQuotaStatus": {
        1: F("hard", "map<string,resource.Quantity>"),
        2: F("used", "map<string,resource.Quantity>"),
    },
    "core.v1.ResourceStatus": {
        1: F("name", "string", "k"), 2: F("resources", "core.v1.ResourceHealth", "r"),
    },
    "core.v1.ScopeSelector": {
        1: F("matchExpressions", "core.v1.ScopedResourceSelectorRequirement", "r"),
    },
    "core.v1.ScopedResourceSelectorRequirement": {
        1: F("scopeName", "string", "k"), 2: F("operator", "string", "k"),
        3: F("values", "string", "r"),
    },
    "core.v1.Secret": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("data", "map<string,bytes>"), 3: F("type"),
        4: F("stringData", "map<string,string>"), 5: F("immutable", "bool", "p"),
    },
    "core.v1.Service": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "core.v1.ServiceSpec"),
        3: F("status", "core.v1.ServiceStatus"),
    },
    "core.v1.ServiceAccount": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("secrets", "core.v1.ObjectReference", "r"),
        3: F("imagePullSecrets", "core.v1.LocalObjectReference", "r"),
        4: F("automountServiceAccountToken", "bool", "p"),
    },
    "core.v1.ServicePort": {
        1: F("name"), 2: F("protocol"), 3: F("port", "int32", "k"),
        4: F("targetPort", "intstr.IntOrString"), 5: F("nodePort", "int32"),
        6: F("appProtocol", "string", "p"),
    },
    "core.v1.ServiceSpec": {
        1: F("ports", "core.v1.ServicePort", "r"), 2: F("selector", "map<string,string>"),
        3: F("clusterIP"), 4: F("type"), 5: F("externalIPs", "string", "r"),
        7: F("sessionAffinity"), 8: F("loadBalancerIP"),
        9: F("loadBalancerSourceRanges", "string", "r"), 10: F("externalName"),
        11: F("externalTrafficPolicy"), 12: F("healthCheckNodePort", "int32"),
        13: F("publishNotReadyAddresses", "bool"),
        14: F("sessionAffinityConfig", "core.v1.SessionAffinityConfig", "p"),
        17: F("ipFamilyPolicy", "string", "p"), 18: F("clusterIPs", "string", "r"),
        19: F("ipFamilies", "string", "r"), 20: F("allocateLoadBalancerNodePorts", "bool", "p"),
        21: F("loadBalancerClass", "string", "p"), 22: F("internalTrafficPolicy", "string", "p"),
        23: F("trafficDistribution", "string", "p"),
    },
    "core.v1.ServiceStatus": {
        1: F("loadBalancer", "core.v1.LoadBalancerStatus"),
        2: F("conditions", "meta.v1.Condition", "r"),
    },
    "core.v1.SessionAffinityConfig": {1: F("clientIP", "core.v1.ClientIPConfig", "p")},
    "core.v1.TypedLocalObjectReference": {
        1: F("apiGroup", "string", "pk"), 2: F("kind", "string", "k"), 3: F("name", "string", "k"),
    },
    "core.v1.VolumeHealthCondition": {
        1: F("status", "string", "k"), 2: F("reason", "string", "k"), 3: F("message"),
    },
    "core.v1.VolumeMountStatus": {
        1: F("name", "string", "k"), 2: F("mountPath", "string", "k"), 3: F("readOnly", "bool"),
        4: F("recursiveReadOnly", "string", "p"), 5: F("volumeStatus", "core.v1.VolumeStatus", "p"),
    },
    "core.v1.VolumeStatus": {1: F("image", "core.v1.ImageVolumeStatus", "p")},
}
# fmt: on
