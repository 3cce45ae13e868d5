"""Protobuf field tables, as data: apps/v1 and related groups.

Groups: apps/v1, batch/v1, autoscaling/v1, policy/v1, scheduling/v1, networking/v1,
discovery/v1.

Field numbers and types are those of the published k8s.io/api ``generated.proto`` files; JSON
names, pointer-ness and ``omitempty`` come from the matching Go struct tags (snapshot
10b39a39bcee). Notation: see control.api.kinds.fields.F.
"""

from __future__ import annotations

from control.api.kinds.fields import F, Field

__all__ = ["APPS_MESSAGES"]

# fmt: off
APPS_MESSAGES: dict[str, dict[int, Field]] = {
    "apps.v1.ControllerRevision": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("data", "runtime.RawExtension"),
        3: F("revision", "int64", "k"),
    },
    "apps.v1.DaemonSet": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "apps.v1.DaemonSetSpec"),
        3: F("status", "apps.v1.DaemonSetStatus"),
    },
    "apps.v1.DaemonSetCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("lastTransitionTime", "meta.v1.Time"), 4: F("reason"), 5: F("message"),
    },
    "apps.v1.DaemonSetSpec": {
        1: F("selector", "meta.v1.LabelSelector", "p"), 2: F("template", "core.v1.PodTemplateSpec"),
        3: F("updateStrategy", "apps.v1.DaemonSetUpdateStrategy"), 4: F("minReadySeconds", "int32"),
        6: F("revisionHistoryLimit", "int32", "p"),
    },
    "apps.v1.DaemonSetStatus": {
        1: F("currentNumberScheduled", "int32", "k"), 2: F("numberMisscheduled", "int32", "k"),
        3: F("desiredNumberScheduled", "int32", "k"), 4: F("numberReady", "int32", "k"),
        5: F("observedGeneration", "int64"), 6: F("updatedNumberScheduled", "int32"),
        7: F("numberAvailable", "int32"), 8: F("numberUnavailable", "int32"),
        9: F("collisionCount", "int32", "p"),
        10: F("conditions", "apps.v1.DaemonSetCondition", "r"),
    },
    "apps.v1.DaemonSetUpdateStrategy": {
        1: F("type"), 2: F("rollingUpdate", "apps.v1.RollingUpdateDaemonSet", "p"),
    },
    "apps.v1.Deployment": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "apps.v1.DeploymentSpec"),
        3: F("status", "apps.v1.DeploymentStatus"),
    },
    "apps.v1.DeploymentCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"), 4: F("reason"), 5: F("message"),
        6: F("lastUpdateTime", "meta.v1.Time"), 7: F("lastTransitionTime", "meta.v1.Time"),
    },
    "apps.v1.DeploymentSpec": {
        1: F("replicas", "int32", "p"), 2: F("selector", "meta.v1.LabelSelector", "p"),
        3: F("template", "core.v1.PodTemplateSpec"), 4: F("strategy", "apps.v1.DeploymentStrategy"),
        5: F("minReadySeconds", "int32"), 6: F("revisionHistoryLimit", "int32", "p"),
        7: F("paused", "bool"), 9: F("progressDeadlineSeconds", "int32", "p"),
    },
    "apps.v1.DeploymentStatus": {
        1: F("observedGeneration", "int64"), 2: F("replicas", "int32"),
        3: F("updatedReplicas", "int32"), 4: F("availableReplicas", "int32"),
        5: F("unavailableReplicas", "int32"),
        6: F("conditions", "apps.v1.DeploymentCondition", "r"), 7: F("readyReplicas", "int32"),
        8: F("collisionCount", "int32", "p"), 9: F("terminatingReplicas", "int32", "p"),
    },
    "apps.v1.DeploymentStrategy": {
        1: F("type"), 2: F("rollingUpdate", "apps.v1.RollingUpdateDeployment", "p"),
    },
    "apps.v1.ReplicaSet": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "apps.v1.ReplicaSetSpec"),
        3: F("status", "apps.v1.ReplicaSetStatus"),
    },
    "apps.v1.ReplicaSetCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("lastTransitionTime", "meta.v1.Time"), 4: F("reason"), 5: F("message"),
    },
    "apps.v1.ReplicaSetSpec": {
        1: F("replicas", "int32", "p"), 2: F("selector", "meta.v1.LabelSelector", "p"),
        3: F("template", "core.v1.PodTemplateSpec"), 4: F("minReadySeconds", "int32"),
    },
    "apps.v1.ReplicaSetStatus": {
        1: F("replicas", "int32", "k"), 2: F("fullyLabeledReplicas", "int32"),
        3: F("observedGeneration", "int64"), 4: F("readyReplicas", "int32"),
        5: F("availableReplicas", "int32"), 6: F("conditions", "apps.v1.ReplicaSetCondition", "r"),
        7: F("terminatingReplicas", "int32", "p"),
    },
    "apps.v1.RollingUpdateDaemonSet": {
        1: F("maxUnavailable", "intstr.IntOrString", "p"),
        2: F("maxSurge", "intstr.IntOrString", "p"),
    },
    "apps.v1.RollingUpdateDeployment": {
        1: F("maxUnavailable", "intstr.IntOrString", "p"),
        2: F("maxSurge", "intstr.IntOrString", "p"),
    },
    "apps.v1.RollingUpdateStatefulSetStrategy": {
        1: F("partition", "int32", "p"), 2: F("maxUnavailable", "intstr.IntOrString", "p"),
    },
    "apps.v1.StatefulSet": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "apps.v1.StatefulSetSpec"),
        3: F("status", "apps.v1.StatefulSetStatus"),
    },
    "apps.v1.StatefulSetCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("lastTransitionTime", "meta.v1.Time"), 4: F("reason"), 5: F("message"),
    },
    "apps.v1.StatefulSetOrdinals": {1: F("start", "int32", "k")},
    "apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy": {
        1: F("whenDeleted"), 2: F("whenScaled"),
    },
    "apps.v1.StatefulSetSpec": {
        1: F("replicas", "int32", "p"), 2: F("selector", "meta.v1.LabelSelector", "p"),
        3: F("template", "core.v1.PodTemplateSpec"),
        4: F("volumeClaimTemplates", "core.v1.PersistentVolumeClaim", "r"),
        5: F("serviceName", "string", "k"), 6: F("podManagementPolicy"),
        7: F("updateStrategy", "apps.v1.StatefulSetUpdateStrategy"),
        8: F("revisionHistoryLimit", "int32", "p"), 9: F("minReadySeconds", "int32"),
        10: F("persistentVolumeClaimRetentionPolicy", "apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy", "p"),
        11: F("ordinals", "apps.v1.StatefulSetOrdinals", "p"),
    },
    "apps.v1.StatefulSetStatus": {
        1: F("observedGeneration", "int64"), 2: F("replicas", "int32", "k"),
        3: F("readyReplicas", "int32"), 4: F("currentReplicas", "int32"),
        5: F("updatedReplicas", "int32"), 6: F("currentRevision"), 7: F("updateRevision"),
        9: F("collisionCount", "int32", "p"),
        10: F("conditions", "apps.v1.StatefulSetCondition", "r"),
        11: F("availableReplicas", "int32", "k"),
    },
    "apps.v1.StatefulSetUpdateStrategy": {
        1: F("type"), 2: F("rollingUpdate", "apps.v1.RollingUpdateStatefulSetStrategy", "p"),
    },
    "autoscaling.v1.CrossVersionObjectReference": {
        1: F("kind", "string", "k"), 2: F("name", "string", "k"), 3: F("apiVersion"),
    },
    "autoscaling.v1.HorizontalPodAutoscaler": {
        1: F("metadata", "meta.v1.ObjectMeta"),
        2: F("spec", "autoscaling.v1.HorizontalPodAutoscalerSpec"),
        3: F("status", "autoscaling.v1.HorizontalPodAutoscalerStatus"),
    },
    "autoscaling.v1.HorizontalPodAutoscalerSpec": {
        1: F("scaleTargetRef", "autoscaling.v1.CrossVersionObjectReference"),
        2: F("minReplicas", "int32", "p"), 3: F("maxReplicas", "int32", "k"),
        4: F("targetCPUUtilizationPercentage", "int32", "p"),
    },
    "autoscaling.v1.HorizontalPodAutoscalerStatus": {
        1: F("observedGeneration", "int64", "p"), 2: F("lastScaleTime", "meta.v1.Time", "p"),
        3: F("currentReplicas", "int32", "k"), 4: F("desiredReplicas", "int32", "k"),
        5: F("currentCPUUtilizationPercentage", "int32", "p"),
    },
    "autoscaling.v1.Scale": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "autoscaling.v1.ScaleSpec"),
        3: F("status", "autoscaling.v1.ScaleStatus"),
    },
    "autoscaling.v1.ScaleSpec": {1: F("replicas", "int32")},
    "autoscaling.v1.ScaleStatus": {1: F("replicas", "int32", "k"), 2: F("selector")},
    "batch.v1.CronJob": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "batch.v1.CronJobSpec"),
        3: F("status", "batch.v1.CronJobStatus"),
    },
    "batch.v1.CronJobSpec": {
        1: F("schedule", "string", "k"), 2: F("startingDeadlineSeconds", "int64", "p"),
        3: F("concurrencyPolicy"), 4: F("suspend", "bool", "p"),
        5: F("jobTemplate", "batch.v1.JobTemplateSpec"),
        6: F("successfulJobsHistoryLimit", "int32", "p"),
        7: F("failedJobsHistoryLimit", "int32", "p"), 8: F("timeZone", "string", "p"),
    },
    "batch.v1.CronJobStatus": {
        1: F("active", "core.v1.ObjectReference", "r"),
        4: F("lastScheduleTime", "meta.v1.Time", "p"),
        5: F("lastSuccessfulTime", "meta.v1.Time", "p"),
    },
    "batch.v1.Job": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "batch.v1.JobSpec"),
        3: F("status", "batch.v1.JobStatus"),
    },
    "batch.v1.JobCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("lastProbeTime", "meta.v1.Time"), 4: F("lastTransitionTime", "meta.v1.Time"),
        5: F("reason"), 6: F("message"),
    },
    "batch.v1.JobSchedulingConfiguration": {
        1: F("schedulingPolicy", "scheduling.v1alpha3.WorkloadPodGroupSchedulingPolicy", "p"),
        2: F("schedulingConstraints", "scheduling.v1alpha3.WorkloadPodGroupSchedulingConstraints", "p"),
        3: F("disruptionMode", "scheduling.v1alpha3.WorkloadPodGroupDisruptionMode", "p"),
        4: F("resourceClaims", "scheduling.v1alpha3.WorkloadPodGroupResourceClaim", "r"),
    },
    "batch.v1.JobSpec": {
        1: F("parallelism", "int32", "p"), 2: F("completions", "int32", "p"),
        3: F("activeDeadlineSeconds", "int64", "p"), 4: F("selector", "meta.v1.LabelSelector", "p"),
        5: F("manualSelector", "bool", "p"), 6: F("template", "core.v1.PodTemplateSpec"),
        7: F("backoffLimit", "int32", "p"), 8: F("ttlSecondsAfterFinished", "int32", "p"),
        9: F("completionMode", "string", "p"), 10: F("suspend", "bool", "p"),
        11: F("podFailurePolicy", "batch.v1.PodFailurePolicy", "p"),
        12: F("backoffLimitPerIndex", "int32", "p"), 13: F("maxFailedIndexes", "int32", "p"),
        14: F("podReplacementPolicy", "string", "p"), 15: F("managedBy", "string", "p"),
        16: F("successPolicy", "batch.v1.SuccessPolicy", "p"),
        17: F("scheduling", "batch.v1.JobSchedulingConfiguration", "p"),
    },
    "batch.v1.JobStatus": {
        1: F("conditions", "batch.v1.JobCondition", "r"), 2: F("startTime", "meta.v1.Time", "p"),
        3: F("completionTime", "meta.v1.Time", "p"), 4: F("active", "int32"),
        5: F("succeeded", "int32"), 6: F("failed", "int32"), 7: F("completedIndexes"),
        8: F("uncountedTerminatedPods", "batch.v1.UncountedTerminatedPods", "p"),
        9: F("ready", "int32", "p"), 10: F("failedIndexes", "string", "p"),
        11: F("terminating", "int32", "p"),
    },
    "batch.v1.JobTemplateSpec": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "batch.v1.JobSpec"),
    },
    "batch.v1.PodFailurePolicy": {1: F("rules", "batch.v1.PodFailurePolicyRule", "r")},
    "batch.v1.PodFailurePolicyOnExitCodesRequirement": {
        1: F("containerName", "string", "p"), 2: F("operator", "string", "k"),
        3: F("values", "int32", "r"),
    },
    "batch.v1.PodFailurePolicyOnPodConditionsPattern": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
    },
    "batch.v1.PodFailurePolicyRule": {
        1: F("action", "string", "k"),
        2: F("onExitCodes", "batch.v1.PodFailurePolicyOnExitCodesRequirement", "p"),
        3: F("onPodConditions", "batch.v1.PodFailurePolicyOnPodConditionsPattern", "r"),
    },
    "batch.v1.SuccessPolicy": {1: F("rules", "batch.v1.SuccessPolicyRule", "r")},
    "batch.v1.SuccessPolicyRule": {
        1: F("succeededIndexes", "string", "p"), 2: F("succeededCount", "int32", "p"),
    },
    "batch.v1.UncountedTerminatedPods": {
        1: F("succeeded", "string", "r"), 2: F("failed", "string", "r"),
    },
    "discovery.v1.Endpoint": {
        1: F("addresses", "string", "r"), 2: F("conditions", "discovery.v1.EndpointConditions"),
        3: F("hostname", "string", "p"), 4: F("targetRef", "core.v1.ObjectReference", "p"),
        5: F("deprecatedTopology", "map<string,string>"), 6: F("nodeName", "string", "p"),
        7: F("zone", "string", "p"), 8: F("hints", "discovery.v1.EndpointHints", "p"),
    },
    "discovery.v1.EndpointConditions": {
        1: F("ready", "bool", "p"), 2: F("serving", "bool", "p"), 3: F("terminating", "bool", "p"),
    },
    "discovery.v1.EndpointHints": {
        1: F("forZones", "discovery.v1.ForZone", "r"), 2: F("forNodes", "discovery.v1.ForNode", "r"),
    },
    "discovery.v1.EndpointPort": {
        1: F("name", "string", "p"), 2: F("protocol", "string", "p"), 3: F("port", "int32", "p"),
        4: F("appProtocol", "string", "p"),
    },
    "discovery.v1.EndpointSlice": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("endpoints", "discovery.v1.Endpoint", "rk"),
        3: F("ports", "discovery.v1.EndpointPort", "rk"), 4: F("addressType", "string", "k"),
    },
    "discovery.v1.ForNode": {1: F("name", "string", "k")},
    "discovery.v1.ForZone": {1: F("name", "string", "k")},
    "networking.v1.HTTPIngressPath": {
        1: F("path"), 2: F("backend", "networking.v1.IngressBackend"),
        3: F("pathType", "string", "pk"),
    },
    "networking.v1.HTTPIngressRuleValue": {1: F("paths", "networking.v1.HTTPIngressPath", "r")},
    "networking.v1.Ingress": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "networking.v1.IngressSpec"),
        3: F("status", "networking.v1.IngressStatus"),
    },
    "networking.v1.IngressBackend": {
        3: F("resource", "core.v1.TypedLocalObjectReference", "p"),
        4: F("service", "networking.v1.IngressServiceBackend", "p"),
    },
    "networking.v1.IngressLoadBalancerIngress": {
        1: F("ip"), 2: F("hostname"), 4: F("ports", "networking.v1.IngressPortStatus", "r"),
    },
    "networking.v1.IngressLoadBalancerStatus": {
        1: F("ingress", "networking.v1.IngressLoadBalancerIngress", "r"),
    },
    "networking.v1.IngressPortStatus": {
        1: F("port", "int32", "k"), 2: F("protocol", "string", "k"), 3: F("error", "string", "p"),
    },
    "networking.v1.IngressRule": {1: F("host"), 2: F("", "networking.v1.IngressRuleValue")},
    "networking.v1.IngressRuleValue": {1: F("http", "networking.v1.HTTPIngressRuleValue", "p")},
    "networking.v1.IngressServiceBackend": {
        1: F("name", "string", "k"), 2: F("port", "networking.v1.ServiceBackendPort"),
    },
    "networking.v1.IngressSpec": {
        1: F("defaultBackend", "networking.v1.IngressBackend", "p"),
        2: F("tls", "networking.v1.IngressTLS", "r"),
        3: F("rules", "networking.v1.IngressRule", "r"), 4: F("ingressClassName", "string", "p"),
    },
    "networking.v1.IngressStatus": {
        1: F("loadBalancer", "networking.v1.IngressLoadBalancerStatus"),
    },
    "networking.v1.IngressTLS": {1: F("hosts", "string", "r"), 2: F("secretName")},
    "networking.v1.ServiceBackendPort": {1: F("name"), 2: F("number", "int32")},
    "policy.v1.Eviction": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("deleteOptions", "meta.v1.DeleteOptions", "p"),
    },
    "policy.v1.PodDisruptionBudget": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "policy.v1.PodDisruptionBudgetSpec"),
        3: F("status", "policy.v1.PodDisruptionBudgetStatus"),
    },
    "policy.v1.PodDisruptionBudgetSpec": {
        1: F("minAvailable", "intstr.IntOrString", "p"),
        2: F("selector", "meta.v1.LabelSelector", "p"),
        3: F("maxUnavailable", "intstr.IntOrString", "p"),
        4: F("unhealthyPodEvictionPolicy", "string", "p"),
    },
    "policy.v1.PodDisruptionBudgetStatus": {
        1: F("observedGeneration", "int64"), 2: F("disruptedPods", "map<string,meta.v1.Time>"),
        3: F("disruptionsAllowed", "int32", "k"), 4: F("currentHealthy", "int32", "k"),
        5: F("desiredHealthy", "int32", "k"), 6: F("expectedPods", "int32", "k"),
        7: F("conditions", "meta.v1.Condition", "r"),
    },
    "scheduling.v1.PriorityClass": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("value", "int32", "k"),
        3: F("globalDefault", "bool"), 4: F("description"), 5: F("preemptionPolicy", "string", "p"),
    },
    "scheduling.v1alpha3.TopologyConstraint": {1: F("key", "string", "k")},
    "scheduling.v1alpha3.WorkloadPodGroupAllDisruptionMode": {},
    "scheduling.v1alpha3.WorkloadPodGroupBasicSchedulingPolicy": {},
    "scheduling.v1alpha3.WorkloadPodGroupDisruptionMode": {
        1: F("single", "scheduling.v1alpha3.WorkloadPodGroupSingleDisruptionMode", "p"),
        2: F("all", "scheduling.v1alpha3.WorkloadPodGroupAllDisruptionMode", "p"),
    },
    "scheduling.v1alpha3.WorkloadPodGroupGangSchedulingPolicy": {1: F("minCount", "int32", "p")},
    "scheduling.v1alpha3.WorkloadPodGroupResourceClaim": {
        1: F("name", "string", "k"), 2: F("resourceClaimName", "string", "p"),
        3: F("resourceClaimTemplateName", "string", "p"),
    },
    "scheduling.v1alpha3.WorkloadPodGroupSchedulingConstraints": {
        1: F("topology", "scheduling.v1alpha3.TopologyConstraint", "r"),
    },
    "scheduling.v1alpha3.WorkloadPodGroupSchedulingPolicy": {
        1: F("basic", "scheduling.v1alpha3.WorkloadPodGroupBasicSchedulingPolicy", "p"),
        2: F("gang", "scheduling.v1alpha3.WorkloadPodGroupGangSchedulingPolicy", "p"),
    },
    "scheduling.v1alpha3.WorkloadPodGroupSingleDisruptionMode": {},
}
# fmt: on
