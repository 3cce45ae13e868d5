"""Protobuf field tables, as data: core/v1 PodSpec and its containers and related groups.

Groups: core/v1 PodSpec and its containers, probes and scheduling types.

Field numbers and types are those of the published k8s.io/api ``generated.proto`` files; JSON
names, pointer-ness and ``omitempty`` come from the matching Go struct tags (snapshot
10b39a39bcee). Notation: see control.api.kinds.fields.F.
"""

from __future__ import annotations

from control.api.kinds.fields import F, Field

__all__ = ["POD_MESSAGES"]

# fmt: off
# Container and EphemeralContainerCommon have the same fields in k8s.io/api; one table.
_CONTAINER: dict[int, Field] = {
    1: F("name", "string", "k"), 2: F("image"), 3: F("command", "string", "r"),
    4: F("args", "string", "r"), 5: F("workingDir"),
    6: F("ports", "core.v1.ContainerPort", "r"), 7: F("env", "core.v1.EnvVar", "r"),
    8: F("resources", "core.v1.ResourceRequirements"),
    9: F("volumeMounts", "core.v1.VolumeMount", "r"),
    10: F("livenessProbe", "core.v1.Probe", "p"), 11: F("readinessProbe", "core.v1.Probe", "p"),
    12: F("lifecycle", "core.v1.Lifecycle", "p"), 13: F("terminationMessagePath"),
    14: F("imagePullPolicy"), 15: F("securityContext", "core.v1.SecurityContext", "p"),
    16: F("stdin", "bool"), 17: F("stdinOnce", "bool"), 18: F("tty", "bool"),
    19: F("envFrom", "core.v1.EnvFromSource", "r"), 20: F("terminationMessagePolicy"),
    21: F("volumeDevices", "core.v1.VolumeDevice", "r"),
    22: F("startupProbe", "core.v1.Probe", "p"),
    23: F("resizePolicy", "core.v1.ContainerResizePolicy", "r"),
    24: F("restartPolicy", "string", "p"),
    25: F("restartPolicyRules", "core.v1.ContainerRestartRule", "r"),
}

POD_MESSAGES: dict[str, dict[int, Field]] = {
    "core.v1.Affinity": {
        1: F("nodeAffinity", "core.v1.NodeAffinity", "p"),
        2: F("podAffinity", "core.v1.PodAffinity", "p"),
        3: F("podAntiAffinity", "core.v1.PodAntiAffinity", "p"),
    },
    "core.v1.AppArmorProfile": {
        1: F("type", "string", "k"), 2: F("localhostProfile", "string", "p"),
    },
    "core.v1.Capabilities": {1: F("add", "string", "r"), 2: F("drop", "string", "r")},
    "core.v1.ConfigMapEnvSource": {
        1: F("", "core.v1.LocalObjectReference"), 2: F("optional", "bool", "p"),
    },
    "core.v1.ConfigMapKeySelector": {
        1: F("", "core.v1.LocalObjectReference"), 2: F("key", "string", "k"),
        3: F("optional", "bool", "p"),
    },
    "core.v1.Container": _CONTAINER,
    "core.v1.ContainerPort": {
        1: F("name"), 2: F("hostPort", "int32"), 3: F("containerPort", "int32", "k"),
        4: F("protocol"), 5: F("hostIP"),
    },
    "core.v1.ContainerResizePolicy": {
        1: F("resourceName", "string", "k"), 2: F("restartPolicy", "string", "k"),
    },
    "core.v1.ContainerRestartRule": {
        1: F("action"), 2: F("exitCodes", "core.v1.ContainerRestartRuleOnExitCodes", "p"),
    },
    "core.v1.ContainerRestartRuleOnExitCodes": {1: F("operator"), 2: F("values", "int32", "r")},
    "core.v1.EnvFromSource": {
        1: F("prefix"), 2: F("configMapRef", "core.v1.ConfigMapEnvSource", "p"),
        3: F("secretRef", "core.v1.SecretEnvSource", "p"),
    },
    "core.v1.EnvVar": {
        1: F("name", "string", "k"), 2: F("value"), 3: F("valueFrom", "core.v1.EnvVarSource", "p"),
    },
    "core.v1.EnvVarSource": {
        1: F("fieldRef", "core.v1.ObjectFieldSelector", "p"),
        2: F("resourceFieldRef", "core.v1.ResourceFieldSelector", "p"),
        3: F("configMapKeyRef", "core.v1.ConfigMapKeySelector", "p"),
        4: F("secretKeyRef", "core.v1.SecretKeySelector", "p"),
        5: F("fileKeyRef", "core.v1.FileKeySelector", "p"),
    },
    "core.v1.EphemeralContainer": {
        1: F("", "core.v1.EphemeralContainerCommon"), 2: F("targetContainerName"),
    },
    "core.v1.EphemeralContainerCommon": _CONTAINER,
    "core.v1.EvictionResponder": {1: F("name", "string", "k"), 2: F("priority", "int32", "pk")},
    "core.v1.ExecAction": {1: F("command", "string", "r")},
    "core.v1.FileKeySelector": {
        1: F("volumeName", "string", "k"), 2: F("path", "string", "k"), 3: F("key", "string", "k"),
        4: F("optional", "bool", "p"),
    },
    "core.v1.GRPCAction": {
        1: F("port", "int32", "k"), 2: F("service", "string", "pk"), 3: F("mode", "string", "p"),
    },
    "core.v1.HTTPGetAction": {
        1: F("path"), 2: F("port", "intstr.IntOrString"), 3: F("host"), 4: F("scheme"),
        5: F("httpHeaders", "core.v1.HTTPHeader", "r"), 6: F("protocol", "string", "p"),
    },
    "core.v1.HTTPHeader": {1: F("name", "string", "k"), 2: F("value", "string", "k")},
    "core.v1.HostAlias": {1: F("ip", "string", "k"), 2: F("hostnames", "string", "r")},
    "core.v1.Lifecycle": {
        1: F("postStart", "core.v1.LifecycleHandler", "p"),
        2: F("preStop", "core.v1.LifecycleHandler", "p"), 3: F("stopSignal", "string", "p"),
    },
    "core.v1.LifecycleHandler": {
        1: F("exec", "core.v1.ExecAction", "p"), 2: F("httpGet", "core.v1.HTTPGetAction", "p"),
        3: F("tcpSocket", "core.v1.TCPSocketAction", "p"),
        4: F("sleep", "core.v1.SleepAction", "p"),
    },
    "core.v1.LocalObjectReference": {1: F("name")},
    "core.v1.NodeAffinity": {
        1: F("requiredDuringSchedulingIgnoredDuringExecution", "core.v1.NodeSelector", "p"),
        2: F("preferredDuringSchedulingIgnoredDuringExecution", "core.v1.PreferredSchedulingTerm", "r"),
    },
    "core.v1.NodeSelector": {1: F("nodeSelectorTerms", "core.v1.NodeSelectorTerm", "r")},
    "core.v1.NodeSelectorRequirement": {
        1: F("key", "string", "k"), 2: F("operator", "string", "k"), 3: F("values", "string", "r"),
    },
    "core.v1.NodeSelectorTerm": {
        1: F("matchExpressions", "core.v1.NodeSelectorRequirement", "r"),
        2: F("matchFields", "core.v1.NodeSelectorRequirement", "r"),
    },
    "core.v1.ObjectFieldSelector": {1: F("apiVersion"), 2: F("fieldPath", "string", "k")},
    "core.v1.PodAffinity": {
        1: F("requiredDuringSchedulingIgnoredDuringExecution", "core.v1.PodAffinityTerm", "r"),
        2: F("preferredDuringSchedulingIgnoredDuringExecution", "core.v1.WeightedPodAffinityTerm", "r"),
    },
    "core.v1.PodAffinityTerm": {
        1: F("labelSelector", "meta.v1.LabelSelector", "p"), 2: F("namespaces", "string", "r"),
        3: F("topologyKey", "string", "k"), 4: F("namespaceSelector", "meta.v1.LabelSelector", "p"),
        5: F("matchLabelKeys", "string", "r"), 6: F("mismatchLabelKeys", "string", "r"),
    },
    "core.v1.PodAntiAffinity": {
        1: F("requiredDuringSchedulingIgnoredDuringExecution", "core.v1.PodAffinityTerm", "r"),
        2: F("preferredDuringSchedulingIgnoredDuringExecution", "core.v1.WeightedPodAffinityTerm", "r"),
    },
    "core.v1.PodDNSConfig": {
        1: F("nameservers", "string", "r"), 2: F("searches", "string", "r"),
        3: F("options", "core.v1.PodDNSConfigOption", "r"),
    },
    "core.v1.PodDNSConfigOption": {1: F("name"), 2: F("value", "string", "p")},
    "core.v1.PodOS": {1: F("name", "string", "k")},
    "core.v1.PodReadinessGate": {1: F("conditionType", "string", "k")},
    "core.v1.PodResourceClaim": {
        1: F("name", "string", "k"), 3: F("resourceClaimName", "string", "p"),
        4: F("resourceClaimTemplateName", "string", "p"),
    },
    "core.v1.PodSchedulingGate": {1: F("name", "string", "k")},
    "core.v1.PodSchedulingGroup": {1: F("podGroupName", "string", "p")},
    "core.v1.PodSecurityContext": {
        1: F("seLinuxOptions", "core.v1.SELinuxOptions", "p"), 2: F("runAsUser", "int64", "p"),
        3: F("runAsNonRoot", "bool", "p"), 4: F("supplementalGroups", "int64", "r"),
        5: F("fsGroup", "int64", "p"), 6: F("runAsGroup", "int64", "p"),
        7: F("sysctls", "core.v1.Sysctl", "r"),
        8: F("windowsOptions", "core.v1.WindowsSecurityContextOptions", "p"),
        9: F("fsGroupChangePolicy", "string", "p"),
        10: F("seccompProfile", "core.v1.SeccompProfile", "p"),
        11: F("appArmorProfile", "core.v1.AppArmorProfile", "p"),
        12: F("supplementalGroupsPolicy", "string", "p"),
        13: F("seLinuxChangePolicy", "string", "p"),
    },
    "core.v1.PodSpec": {
        1: F("volumes", "core.v1.Volume", "r"), 2: F("containers", "core.v1.Container", "r"),
        3: F("restartPolicy"), 4: F("terminationGracePeriodSeconds", "int64", "p"),
        5: F("activeDeadlineSeconds", "int64", "p"), 6: F("dnsPolicy"),
        7: F("nodeSelector", "map<string,string>"), 8: F("serviceAccountName"),
        9: F("serviceAccount"), 10: F("nodeName"), 11: F("hostNetwork", "bool"),
        12: F("hostPID", "bool"), 13: F("hostIPC", "bool"),
        14: F("securityContext", "core.v1.PodSecurityContext", "p"),
        15: F("imagePullSecrets", "core.v1.LocalObjectReference", "r"), 16: F("hostname"),
        17: F("subdomain"), 18: F("affinity", "core.v1.Affinity", "p"), 19: F("schedulerName"),
        20: F("initContainers", "core.v1.Container", "r"),
        21: F("automountServiceAccountToken", "bool", "p"),
        22: F("tolerations", "core.v1.Toleration", "r"),
        23: F("hostAliases", "core.v1.HostAlias", "r"), 24: F("priorityClassName"),
        25: F("priority", "int32", "p"), 26: F("dnsConfig", "core.v1.PodDNSConfig", "p"),
        27: F("shareProcessNamespace", "bool", "p"),
        28: F("readinessGates", "core.v1.PodReadinessGate", "r"),
        29: F("runtimeClassName", "string", "p"), 30: F("enableServiceLinks", "bool", "p"),
        31: F("preemptionPolicy", "string", "p"),
        32: F("overhead", "map<string,resource.Quantity>"),
        33: F("topologySpreadConstraints", "core.v1.TopologySpreadConstraint", "r"),
        34: F("ephemeralContainers", "core.v1.EphemeralContainer", "r"),
        35: F("setHostnameAsFQDN", "bool", "p"), 36: F("os", "core.v1.PodOS", "p"),
        37: F("hostUsers", "bool", "p"), 38: F("schedulingGates", "core.v1.PodSchedulingGate", "r"),
        39: F("resourceClaims", "core.v1.PodResourceClaim", "r"),
        40: F("resources", "core.v1.ResourceRequirements", "p"),
        41: F("hostnameOverride", "string", "p"),
        43: F("schedulingGroup", "core.v1.PodSchedulingGroup", "p"),
        44: F("evictionResponders", "core.v1.EvictionResponder", "r"),
    },
    "core.v1.PreferredSchedulingTerm": {
        1: F("weight", "int32", "k"), 2: F("preference", "core.v1.NodeSelectorTerm"),
    },
    "core.v1.Probe": {
        1: F("", "core.v1.ProbeHandler"), 2: F("initialDelaySeconds", "int32"),
        3: F("timeoutSeconds", "int32"), 4: F("periodSeconds", "int32"),
        5: F("successThreshold", "int32"), 6: F("failureThreshold", "int32"),
        7: F("terminationGracePeriodSeconds", "int64", "p"),
    },
    "core.v1.ProbeHandler": {
        1: F("exec", "core.v1.ExecAction", "p"), 2: F("httpGet", "core.v1.HTTPGetAction", "p"),
        3: F("tcpSocket", "core.v1.TCPSocketAction", "p"), 4: F("grpc", "core.v1.GRPCAction", "p"),
    },
    "core.v1.ResourceClaim": {1: F("name", "string", "k"), 2: F("request")},
    "core.v1.ResourceFieldSelector": {
        1: F("containerName"), 2: F("resource", "string", "k"),
        3: F("divisor", "resource.Quantity"),
    },
    "core.v1.ResourceRequirements": {
        1: F("limits", "map<string,resource.Quantity>"),
        2: F("requests", "map<string,resource.Quantity>"),
        3: F("claims", "core.v1.ResourceClaim", "r"),
    },
    "core.v1.SELinuxOptions": {1: F("user"), 2: F("role"), 3: F("type"), 4: F("level")},
    "core.v1.SeccompProfile": {
        1: F("type", "string", "k"), 2: F("localhostProfile", "string", "p"),
    },
    "core.v1.SecretEnvSource": {
        1: F("", "core.v1.LocalObjectReference"), 2: F("optional", "bool", "p"),
    },
    "core.v1.SecretKeySelector": {
        1: F("", "core.v1.LocalObjectReference"), 2: F("key", "string", "k"),
        3: F("optional", "bool", "p"),
    },
    "core.v1.SecurityContext": {
        1: F("capabilities", "core.v1.Capabilities", "p"), 2: F("privileged", "bool", "p"),
        3: F("seLinuxOptions", "core.v1.SELinuxOptions", "p"), 4: F("runAsUser", "int64", "p"),
        5: F("runAsNonRoot", "bool", "p"), 6: F("readOnlyRootFilesystem", "bool", "p"),
        7: F("allowPrivilegeEscalation", "bool", "p"), 8: F("runAsGroup", "int64", "p"),
        9: F("procMount", "string", "p"),
        10: F("windowsOptions", "core.v1.WindowsSecurityContextOptions", "p"),
        11: F("seccompProfile", "core.v1.SeccompProfile", "p"),
        12: F("appArmorProfile", "core.v1.AppArmorProfile", "p"),
    },
    "core.v1.SleepAction": {1: F("seconds", "int64", "k")},
    "core.v1.Sysctl": {1: F("name", "string", "k"), 2: F("value", "string", "k")},
    "core.v1.TCPSocketAction": {1: F("port", "intstr.IntOrString"), 2: F("host")},
    "core.v1.Toleration": {
        1: F("key"), 2: F("operator"), 3: F("value"), 4: F("effect"),
        5: F("tolerationSeconds", "int64", "p"),
    },
    "core.v1.TopologySpreadConstraint": {
        1: F("maxSkew", "int32", "k"), 2: F("topologyKey", "string", "k"),
        3: F("whenUnsatisfiable", "string", "k"),
        4: F("labelSelector", "meta.v1.LabelSelector", "p"), 5: F("minDomains", "int32", "p"),
        6: F("nodeAffinityPolicy", "string", "p"), 7: F("nodeTaintsPolicy", "string", "p"),
        8: F("matchLabelKeys", "string", "r"),
    },
    "core.v1.VolumeDevice": {1: F("name", "string", "k"), 2: F("devicePath", "string", "k")},
    "core.v1.VolumeMount": {
        1: F("name", "string", "k"), 2: F("readOnly", "bool"), 3: F("mountPath", "string", "k"),
        4: F("subPath"), 5: F("mountPropagation", "string", "p"), 6: F("subPathExpr"),
        7: F("recursiveReadOnly", "string", "p"), 8: F("bindMountOptions", "string", "r"),
    },
    "core.v1.WeightedPodAffinityTerm": {
        1: F("weight", "int32", "k"), 2: F("podAffinityTerm", "core.v1.PodAffinityTerm"),
    },
    "core.v1.WindowsSecurityContextOptions": {
        1: F("gmsaCredentialSpecName", "string", "p"), 2: F("gmsaCredentialSpec", "string", "p"),
        3: F("runAsUserName", "string", "p"), 4: F("hostProcess", "bool", "p"),
    },
}
# fmt: on
