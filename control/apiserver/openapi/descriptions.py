"""Human-readable descriptions for the OpenAPI schemas, shown by ``kubectl explain``.

The protobuf tables carry no documentation, so this module holds short descriptions, written
for ketch, of the served kinds, of the sub-types people explain most, and of common fields.
A field is described by ``(message, field)`` first, then by its name alone; anything else goes
without a description (kubectl prints ``<no description>``).
"""

from __future__ import annotations

__all__ = ["API_VERSION", "KIND", "field_description", "type_description"]

_TYPES: dict[str, str] = {
    # top-level kinds
    "core.v1.Namespace": "Namespace is a scope for names: most objects live in exactly one.",
    "core.v1.Node": "Node is a machine that runs pods; ketch's node agent registers and "
    "heartbeats it.",
    "core.v1.Pod": "Pod is a group of containers scheduled together onto one node, sharing "
    "network and storage.",
    "core.v1.Service": "Service names a set of pods (chosen by a label selector) and the ports "
    "they serve.",
    "core.v1.Endpoints": "Endpoints lists the addresses and ports currently backing a service.",
    "core.v1.ConfigMap": "ConfigMap holds non-secret configuration as string or binary values.",
    "core.v1.Secret": "Secret holds sensitive values (tokens, keys, passwords), base64-encoded "
    "in data.",
    "core.v1.Event": "Event records something that happened to an object, for people reading "
    "`kubectl get events` or `kubectl describe`.",
    "core.v1.ServiceAccount": "ServiceAccount is an identity for processes running in pods.",
    "core.v1.ResourceQuota": "ResourceQuota limits the total resources a namespace may use.",
    "core.v1.LimitRange": "LimitRange sets default, minimum and maximum resources per pod or "
    "container in a namespace.",
    "core.v1.Binding": "Binding assigns a pod to a node (the scheduler's write).",
    "apps.v1.Deployment": "Deployment keeps a number of identical pods running and rolls them "
    "out declaratively through ReplicaSets.",
    "apps.v1.ReplicaSet": "ReplicaSet keeps a given number of pods matching its selector running.",
    "apps.v1.DaemonSet": "DaemonSet runs one copy of a pod on every (selected) node.",
    "apps.v1.StatefulSet": "StatefulSet runs pods with stable, ordered identities.",
    "batch.v1.Job": "Job runs pods until a number of them complete successfully.",
    "batch.v1.CronJob": "CronJob creates Jobs on a repeating schedule.",
    "batch.v1.CronJobSpec": "CronJobSpec says when jobs run and what they look like.",
    "batch.v1.CronJobStatus": "CronJobStatus is the most recently observed state of a cron job.",
    "batch.v1.JobTemplateSpec": "JobTemplateSpec describes the Jobs a CronJob creates.",
    "batch.v1.JobSpec": "JobSpec describes how a job runs.",
    "apps.v1.ControllerRevision": "ControllerRevision is an immutable snapshot of a "
    "controller's template, kept for rollout history and rollback. Its data never changes once "
    "created.",
    "discovery.v1.EndpointSlice": "EndpointSlice lists some of the endpoints (addresses and "
    "ports) that implement a service; the label kubernetes.io/service-name names the service.",
    "discovery.v1.Endpoint": "Endpoint is one backend of a service: its addresses and "
    "conditions.",
    "discovery.v1.EndpointConditions": "EndpointConditions says whether an endpoint is ready, "
    "serving and terminating.",
    "discovery.v1.EndpointPort": "EndpointPort is a network port the endpoints of a slice "
    "expose.",
    "policy.v1.PodDisruptionBudget": "PodDisruptionBudget limits how many of a set of pods "
    "voluntary disruptions (evictions, such as by `kubectl drain`) may take down at once.",
    "policy.v1.PodDisruptionBudgetSpec": "PodDisruptionBudgetSpec selects the pods and says how "
    "many must stay available.",
    "policy.v1.PodDisruptionBudgetStatus": "PodDisruptionBudgetStatus is the most recently "
    "observed state of a disruption budget, maintained by the disruption controller.",
    "policy.v1.Eviction": "Eviction asks to delete a pod within its disruption budget (POST to "
    "a pod's eviction subresource).",
    "scheduling.v1.PriorityClass": "PriorityClass maps a class name to the integer priority "
    "its pods are scheduled (and preempt) with.",
    "meta.v1.Condition": "Condition is one aspect of an object's current state.",
    "runtime.RawExtension": "RawExtension holds an arbitrary embedded JSON object.",
    "coordination.v1.Lease": "Lease is a lightweight lock with a holder and a duration, used for "
    "leader election and node heartbeats.",
    "rbac.v1.Role": "Role is a namespaced set of permission rules.",
    "rbac.v1.ClusterRole": "ClusterRole is a cluster-wide set of permission rules.",
    "rbac.v1.RoleBinding": "RoleBinding grants the permissions of a Role or ClusterRole to "
    "subjects within a namespace.",
    "rbac.v1.ClusterRoleBinding": "ClusterRoleBinding grants the permissions of a ClusterRole "
    "to subjects across the cluster.",
    "authorization.v1.SelfSubjectAccessReview": "SelfSubjectAccessReview asks whether the "
    "requesting user may perform an action (`kubectl auth can-i`).",
    "authorization.v1.SelfSubjectRulesReview": "SelfSubjectRulesReview lists the actions the "
    "requesting user may perform in a namespace.",
    "authorization.v1.SubjectAccessReview": "SubjectAccessReview asks whether a given user may "
    "perform an action.",
    "authentication.v1.SelfSubjectReview": "SelfSubjectReview reports who the server thinks the "
    "requesting user is (`kubectl auth whoami`).",
    "autoscaling.v1.Scale": "Scale is the replica count of a scalable resource (the scale "
    "subresource).",
    "meta.v1.Status": "Status is the result of an operation that returns no object, and the "
    "body of every error response.",
    "meta.v1.DeleteOptions": "DeleteOptions may be sent with a DELETE request.",
    # sub-types
    "meta.v1.ObjectMeta": "ObjectMeta is the metadata every stored object has: name, namespace, "
    "labels, annotations, and fields the server maintains.",
    "meta.v1.ListMeta": "ListMeta is the metadata of a list: its resourceVersion and the "
    "continue token for the next page.",
    "meta.v1.LabelSelector": "LabelSelector selects objects by label; its requirements are "
    "ANDed. An empty selector matches everything.",
    "meta.v1.Time": "Time is an RFC 3339 timestamp in UTC, with second precision.",
    "meta.v1.MicroTime": "MicroTime is an RFC 3339 timestamp in UTC, with microsecond precision.",
    "intstr.IntOrString": "IntOrString holds either an integer or a string (such as a port "
    "number or name, or a percentage).",
    "resource.Quantity": "Quantity is a fixed-point number with an optional suffix, such as "
    "`100m`, `2`, `1Gi` or `500M`.",
    "core.v1.PodSpec": "PodSpec describes a pod: its containers, volumes and scheduling "
    "constraints.",
    "core.v1.PodTemplateSpec": "PodTemplateSpec describes the pods a controller creates.",
    "core.v1.Container": "Container is one container of a pod.",
    "core.v1.PodStatus": "PodStatus is the most recently observed state of a pod.",
    "apps.v1.DeploymentSpec": "DeploymentSpec is the desired state of a deployment.",
    "apps.v1.DeploymentStatus": "DeploymentStatus is the most recently observed state of a "
    "deployment.",
    "apps.v1.DeploymentStrategy": "DeploymentStrategy says how to replace old pods with new ones.",
}

#: apiVersion and kind of a top-level object (added by the schema builder, not in the tables).
API_VERSION = (
    "APIVersion is the versioned schema of this object, such as `v1` or `apps/v1`. The server "
    "converts recognized schemas to the latest internal value."
)
KIND = (
    "Kind is the REST resource type of this object, in CamelCase, such as `Pod`. It cannot be "
    "updated."
)

# By field name, for fields holding an object (a status condition's `status` is a string).
_OBJECT_FIELDS: dict[str, str] = {
    "metadata": "Standard object metadata: name, namespace, labels, annotations and the fields "
    "the server maintains.",
    "spec": "The desired state of the object, written by its owner.",
    "status": "The most recently observed state of the object, written by the system. "
    "Read-only for users.",
    "selector": "Label query over the objects (usually pods) this object manages or targets.",
    "template": "The template of the pods to create.",
    "strategy": "How old pods are replaced with new ones.",
}

# By field name, whatever the type.
_FIELDS: dict[str, str] = {
    "containers": "The containers of the pod. There must be at least one. Containers cannot be "
    "added or removed once the pod exists.",
    "initContainers": "Containers run to completion, one after another, before the regular "
    "containers start.",
    "image": "The container image to run, such as `nginx:1.27` or "
    "`registry.example/app@sha256:...`.",
    "env": "Environment variables to set in the container.",
    "labels": "Map of string keys and values used to organize and select objects.",
    "annotations": "Map of string keys and values for arbitrary, non-identifying metadata set "
    "by tools and people.",
    "replicas": "The number of desired pods. Defaults to 1.",
    "volumes": "Volumes that containers of the pod can mount.",
    "restartPolicy": "When to restart containers of the pod: Always, OnFailure or Never.",
}

_MESSAGE_FIELDS: dict[tuple[str, str], str] = {
    ("meta.v1.ListMeta", "continue"): "Opaque token: pass it as `continue` to get the next page.",
    ("meta.v1.ListMeta", "resourceVersion"): "The version of the store the list was read at.",
    ("meta.v1.ObjectMeta", "resourceVersion"): "Opaque version of this object, changed by every "
    "write. Send it back on update to fail with a conflict if someone else wrote first.",
    ("meta.v1.ObjectMeta", "generation"): "Sequence number of the desired state, incremented "
    "by the server when the spec changes.",
    ("meta.v1.ObjectMeta", "name"): "Name of the object, unique within its namespace (or the "
    "cluster, for cluster-scoped kinds).",
    ("meta.v1.ObjectMeta", "namespace"): "The namespace of the object; empty means `default` "
    "for namespaced kinds. Cluster-scoped objects have none.",
    ("meta.v1.ObjectMeta", "uid"): "Unique identifier of this object, set by the server.",
    ("apps.v1.DeploymentStatus", "replicas"): "Number of pods targeted by this deployment that "
    "are not terminated.",
    ("apps.v1.ReplicaSetStatus", "replicas"): "The most recently observed number of replicas.",
    ("apps.v1.StatefulSetStatus", "replicas"): "Number of pods created by the stateful set.",
    ("autoscaling.v1.ScaleSpec", "replicas"): "The desired number of replicas.",
    ("autoscaling.v1.ScaleStatus", "replicas"): "The observed number of replicas.",
    ("core.v1.Secret", "data"): "Secret values by key, base64-encoded in JSON.",
    ("core.v1.Secret", "stringData"): "Write-only convenience: plain-text values merged into "
    "data on write.",
    ("core.v1.ConfigMap", "data"): "Configuration values by key, as UTF-8 strings.",
    ("core.v1.Container", "command"): "The entrypoint, replacing the image's ENTRYPOINT. Not "
    "run in a shell.",
    ("core.v1.Container", "args"): "Arguments to the entrypoint, replacing the image's CMD.",
    ("core.v1.Container", "resources"): "Compute resources (cpu, memory) requested by and "
    "limited for the container.",
    ("core.v1.Container", "ports"): "Ports the container listens on (informational).",
    ("core.v1.PodSpec", "nodeName"): "The node the pod is bound to. Set by the scheduler, or by "
    "the user to bypass it.",
    ("core.v1.Container", "name"): "Name of the container, unique within the pod (DNS label).",
    ("batch.v1.CronJobSpec", "schedule"): "The schedule in Cron format: minute, hour, day of "
    "month, month and day of week (`*/5 * * * *`), or a descriptor such as `@hourly`, "
    "`@daily`, `@weekly`, `@monthly`, `@yearly` or `@every 90m`.",
    ("batch.v1.CronJobSpec", "timeZone"): "The IANA time zone the schedule is read in (such as "
    "`Etc/UTC` or `Europe/Berlin`); the controller's own when unset.",
    ("batch.v1.CronJobSpec", "concurrencyPolicy"): "How to treat a run that is due while the "
    "previous one still runs: Allow (default), Forbid (skip the new run) or Replace (stop the "
    "old one).",
    ("batch.v1.CronJobSpec", "suspend"): "When true, no more jobs are started. Defaults to "
    "false.",
    ("batch.v1.CronJobSpec", "startingDeadlineSeconds"): "Seconds after its scheduled time a "
    "missed run may still start; later, it counts as failed.",
    ("batch.v1.CronJobSpec", "successfulJobsHistoryLimit"): "How many finished jobs to keep. "
    "Defaults to 3.",
    ("batch.v1.CronJobSpec", "failedJobsHistoryLimit"): "How many failed jobs to keep. "
    "Defaults to 1.",
    ("batch.v1.CronJobSpec", "jobTemplate"): "The Job created at each scheduled time.",
    ("policy.v1.PodDisruptionBudgetSpec", "minAvailable"): "How many selected pods must stay "
    "available after an eviction: a number or a percentage such as `50%`. Excludes "
    "maxUnavailable.",
    ("policy.v1.PodDisruptionBudgetSpec", "maxUnavailable"): "How many selected pods may be "
    "unavailable after an eviction: a number or a percentage. Excludes minAvailable.",
    ("policy.v1.PodDisruptionBudgetSpec", "unhealthyPodEvictionPolicy"): "When a pod that is "
    "not Ready may be evicted: IfHealthyBudget (default: only while the budget is met) or "
    "AlwaysAllow.",
    ("policy.v1.PodDisruptionBudgetStatus", "disruptionsAllowed"): "How many pods may be "
    "evicted now.",
    ("policy.v1.PodDisruptionBudgetStatus", "disruptedPods"): "Pods whose eviction the API "
    "server has accepted but the disruption controller has not yet seen go, with the time of "
    "the eviction.",
    ("scheduling.v1.PriorityClass", "value"): "The priority of pods of this class; higher "
    "schedules first. At most 1000000000 for user-defined classes.",
    ("scheduling.v1.PriorityClass", "globalDefault"): "Whether pods that name no priority "
    "class get this one. At most one class may be the global default.",
    ("scheduling.v1.PriorityClass", "preemptionPolicy"): "PreemptLowerPriority (default) or "
    "Never.",
    ("discovery.v1.EndpointSlice", "addressType"): "The type of the addresses in this slice: "
    "IPv4, IPv6 or FQDN. Fixed once created.",
    ("apps.v1.ControllerRevision", "data"): "The serialized state this revision holds.",
    ("apps.v1.ControllerRevision", "revision"): "The revision number of the state in data.",
}


def type_description(message: str) -> str | None:
    """The description of a type (protobuf message name), or None."""
    return _TYPES.get(message)


def field_description(message: str, field: str, *, holds_object: bool) -> str | None:
    """The description of ``field`` of ``message``, or None when we have none.

    ``holds_object`` says the field's value is an object (a message), which some generic
    descriptions (``spec``, ``status``) require.
    """
    found = _MESSAGE_FIELDS.get((message, field)) or _FIELDS.get(field)
    if found is None and holds_object:
        found = _OBJECT_FIELDS.get(field)
    return found
