"""Server-side Table printers: column sets, row cells per kind, includeObject, human ages."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.apiserver.tables import PRINTERS, human_duration, table_for

NOW = datetime.datetime(2026, 1, 2, 12, 0, 0, tzinfo=datetime.UTC)


def ago(seconds: float) -> str:
    """An RFC 3339 timestamp ``seconds`` before NOW."""
    moment = NOW - datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, seconds: float = 300, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(seconds), **extra}


def cells(kind: str, obj: dict[str, Any]) -> list[Any]:
    return list(table_for(kind, [obj], now=NOW)["rows"][0]["cells"])


def running(name: str, *, ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(200)}},
    }


def waiting(name: str, reason: str, *, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
    }


def terminated(
    name: str, *, reason: str = "", exit_code: int = 0, signal: int = 0
) -> dict[str, Any]:
    state = {"exitCode": exit_code, "reason": reason, "signal": signal}
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


def pod(
    *statuses: dict[str, Any],
    phase: str = "Running",
    containers: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    count = len(statuses) if containers is None else containers
    obj: dict[str, Any] = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta("web-1"),
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": f"c{i}", "image": "nginx"} for i in range(count)],
        },
        "status": {"phase": phase, "podIP": "10.0.0.5", "containerStatuses": list(statuses)},
    }
    for key, value in extra.items():
        section, _, field = key.partition("__")
        obj[section][field] = value
    return obj


CRASHLOOP = waiting("c0", "CrashLoopBackOff", restarts=3)
CRASHLOOP["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}

SIDECAR_POD = pod(
    running("c0"),
    spec__initContainers=[{"name": "log", "restartPolicy": "Always"}],
    status__initContainerStatuses=[
        {
            **running("log", restarts=2),
            "started": True,
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(4 * 3600)}},
        }
    ],
    status__conditions=[{"type": "Initialized", "status": "True"}],
)

POD_CASES = [
    pytest.param(
        pod(running("c0"), running("c1", ready=False)),
        ["web-1", "1/2", "Running", "0", "5m", "10.0.0.5", "node-a", "<none>", "<none>"],
        id="running-half-ready",
    ),
    pytest.param(
        pod(CRASHLOOP),
        [
            "web-1",
            "0/1",
            "CrashLoopBackOff",
            "3 (5m ago)",
            "5m",
            "10.0.0.5",
            "node-a",
            "<none>",
            "<none>",
        ],
        id="crashloop-restarts-ago",
    ),
    pytest.param(
        pod(waiting("c0", "ErrImagePull"), phase="Pending"),
        ["web-1", "0/1", "ErrImagePull"],
        id="err-image-pull",
    ),
    pytest.param(
        pod(terminated("c0", reason="Completed"), phase="Succeeded"),
        ["web-1", "0/1", "Completed"],
        id="completed",
    ),
    pytest.param(
        pod(terminated("c0", exit_code=137)),
        ["web-1", "0/1", "ExitCode:137"],
        id="exit-code-without-reason",
    ),
    pytest.param(pod(terminated("c0", signal=9)), ["web-1", "0/1", "Signal:9"], id="signal"),
    pytest.param(
        pod(terminated("c0", reason="Completed"), running("c1")),
        ["web-1", "1/2", "NotReady"],
        id="completed-but-one-running-not-ready",
    ),
    pytest.param(
        pod(
            terminated("c0", reason="Completed"),
            running("c1"),
            status__conditions=[{"type": "Ready", "status": "True"}],
        ),
        ["web-1", "1/2", "Running"],
        id="completed-but-one-running-ready",
    ),
    pytest.param(
        pod(running("c0"), metadata__deletionTimestamp=ago(1)),
        ["web-1", "1/1", "Terminating"],
        id="terminating",
    ),
    pytest.param(
        pod(
            terminated("c0", reason="Completed"),
            phase="Succeeded",
            metadata__deletionTimestamp=ago(1),
        ),
        ["web-1", "0/1", "Completed"],
        id="deleting-finished-pod-keeps-status",
    ),
    pytest.param(
        pod(running("c0"), metadata__deletionTimestamp=ago(1), status__reason="NodeLost"),
        ["web-1", "1/1", "Unknown"],
        id="node-lost",
    ),
    pytest.param(
        pod(
            containers=1,
            phase="Pending",
            status__containerStatuses=[],
            status__podIP="",
            spec__nodeName="",
        ),
        ["web-1", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="pending-unscheduled",
    ),
    pytest.param(
        pod(
            containers=1,
            phase="Pending",
            status__conditions=[
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
            ],
        ),
        ["web-1", "0/1", "SchedulingGated"],
        id="scheduling-gated",
    ),
    pytest.param(
        pod(
            waiting("c0", "PodInitializing"),
            phase="Pending",
            spec__initContainers=[{"name": "i0"}, {"name": "i1"}],
            status__initContainerStatuses=[
                terminated("i0", reason="Completed"),
                running("i1", ready=False),
            ],
        ),
        ["web-1", "0/1", "Init:1/2"],
        id="init-progress",
    ),
    pytest.param(
        pod(
            waiting("c0", "PodInitializing"),
            phase="Pending",
            spec__initContainers=[{"name": "i0"}],
            status__initContainerStatuses=[waiting("i0", "CrashLoopBackOff", restarts=4)],
        ),
        ["web-1", "0/1", "Init:CrashLoopBackOff", "4"],
        id="init-crashloop",
    ),
    pytest.param(
        pod(
            waiting("c0", "PodInitializing"),
            phase="Pending",
            spec__initContainers=[{"name": "i0"}],
            status__initContainerStatuses=[terminated("i0", reason="Error", exit_code=2)],
        ),
        ["web-1", "0/1", "Init:Error"],
        id="init-failed",
    ),
    pytest.param(
        SIDECAR_POD,
        ["web-1", "2/2", "Running", "2 (4h ago)"],
        id="sidecar-counts-as-container",
    ),
    pytest.param(
        pod(
            running("c0"),
            spec__readinessGates=[{"conditionType": "lb/ready"}, {"conditionType": "x/y"}],
            status__conditions=[{"type": "lb/ready", "status": "True"}],
            status__podIPs=[{"ip": "10.0.0.9"}],
            status__nominatedNodeName="node-b",
        ),
        ["web-1", "1/1", "Running", "0", "5m", "10.0.0.9", "node-a", "node-b", "1/2"],
        id="readiness-gates-and-nominated",
    ),
    pytest.param(
        {"metadata": {"name": "bare"}},
        ["bare", "0/0", "Pending", "0", "<unknown>", "<none>", "<none>", "<none>", "<none>"],
        id="empty-pod",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), POD_CASES)
def test_pod_cells(obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells("Pod", obj)[: len(expected)] == expected


def node(*, ready: str | None = "True", **spec: Any) -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {
        "metadata": meta(
            "node-a",
            3 * 86400,
            labels={
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/etcd": "true",
                "kubernetes.io/role": "master",
                "kubernetes.io/os": "linux",
            },
        ),
        "spec": spec,
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, *conditions],
            "addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalIP", "address": "192.168.1.10"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.31.0-ketch",
                "osImage": "Debian GNU/Linux 12",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "ketch://0.1",
            },
        },
    }


SERVICE_PORTS = [
    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
    {"name": "https", "port": 443},
]


def service(kind: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": meta("web", 600),
        "spec": {
            "type": kind,
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": SERVICE_PORTS,
            **spec,
        },
        "status": {},
    }


def endpoints(*ips: str, ports: list[int] | None = None) -> dict[str, Any]:
    subset: dict[str, Any] = {"addresses": [{"ip": ip} for ip in ips]}
    if ports is not None:
        subset["ports"] = [{"port": p} for p in ports]
    return {"metadata": meta("web"), "subsets": [subset]}


TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [
            {"name": "app", "image": "nginx:1.27"},
            {"name": "proxy", "image": "envoy:1.30"},
        ]
    },
}
SELECTOR = {
    "matchLabels": {"app": "web"},
    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
}


def job(*conditions: str, **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"succeeded": 1, "startTime": ago(150)}
    status["conditions"] = [{"type": c, "status": "True"} for c in conditions]
    obj = {
        "metadata": meta("backup", 600),
        "spec": {"completions": 3, "template": TEMPLATE, "selector": {"matchLabels": {"job": "b"}}},
        "status": status,
    }
    for key, value in extra.items():
        section, _, field = key.partition("__")
        obj[section][field] = value
    return obj


CASES = [
    pytest.param(
        "Namespace",
        {"metadata": meta("team-a"), "status": {"phase": "Terminating"}},
        ["team-a", "Terminating", "5m"],
        id="namespace",
    ),
    pytest.param(
        "Namespace",
        {"metadata": meta("team-b")},
        ["team-b", "Active", "5m"],
        id="namespace-default-active",
    ),
    pytest.param(
        "Node",
        node(),
        [
            "node-a",
            "Ready",
            "control-plane,etcd,master",
            "3d",
            "v1.31.0-ketch",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12",
            "6.1.0",
            "ketch://0.1",
        ],
        id="node-ready",
    ),
    pytest.param(
        "Node",
        node(ready="False", unschedulable=True),
        ["node-a", "NotReady,SchedulingDisabled"],
        id="node-notready-cordoned",
    ),
    pytest.param("Node", node(ready="Unknown"), ["node-a", "NotReady"], id="node-ready-unknown"),
    pytest.param("Node", node(ready=None), ["node-a", "Unknown"], id="node-no-ready-condition"),
    pytest.param(
        "Node",
        {"metadata": {"name": "n"}},
        [
            "n",
            "Unknown",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>",
        ],
        id="node-empty",
    ),
    pytest.param(
        "Deployment",
        {
            "metadata": meta("web"),
            "spec": {"replicas": 3, "template": TEMPLATE, "selector": SELECTOR},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        },
        ["web", "2/3", 3, 2, "5m", "app,proxy", "nginx:1.27,envoy:1.30", "app=web,tier in (a,b)"],
        id="deployment",
    ),
    pytest.param(
        "Deployment",
        {"metadata": {"name": "d"}},
        ["d", "0/0", 0, 0, "<unknown>", "", "", "<none>"],
        id="deployment-empty",
    ),
    pytest.param(
        "Deployment",
        {
            "metadata": meta("d"),
            "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}},
        },
        ["d", "0/0", 0, 0, "5m", "", "", "<error>"],
        id="deployment-invalid-selector",
    ),
    pytest.param(
        "ReplicaSet",
        {
            "metadata": meta("web-5d8f"),
            "spec": {
                "replicas": 2,
                "template": TEMPLATE,
                "selector": {"matchLabels": {"app": "web"}},
            },
            "status": {"replicas": 2, "readyReplicas": 1},
        },
        ["web-5d8f", 2, 2, 1, "5m", "app,proxy", "nginx:1.27,envoy:1.30", "app=web"],
        id="replicaset",
    ),
    pytest.param(
        "DaemonSet",
        {
            "metadata": meta("agent"),
            "spec": {
                "template": {
                    **TEMPLATE,
                    "spec": {
                        **TEMPLATE["spec"],
                        "nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
                    },
                },
                "selector": {"matchLabels": {"app": "agent"}},
            },
            "status": {
                "desiredNumberScheduled": 3,
                "currentNumberScheduled": 3,
                "numberReady": 2,
                "updatedNumberScheduled": 3,
                "numberAvailable": 2,
            },
        },
        [
            "agent",
            3,
            3,
            2,
            3,
            2,
            "disk=ssd,kubernetes.io/os=linux",
            "5m",
            "app,proxy",
            "nginx:1.27,envoy:1.30",
            "app=agent",
        ],
        id="daemonset",
    ),
    pytest.param(
        "StatefulSet",
        {
            "metadata": meta("db"),
            "spec": {"replicas": 3, "template": TEMPLATE},
            "status": {"readyReplicas": 1},
        },
        ["db", "1/3", "5m", "app,proxy", "nginx:1.27,envoy:1.30"],
        id="statefulset",
    ),
    pytest.param(
        "Job",
        job(),
        ["backup", "Running", "1/3", "2m30s", "10m", "app,proxy", "nginx:1.27,envoy:1.30", "job=b"],
        id="job-running",
    ),
    pytest.param(
        "Job",
        job("Complete", status__completionTime=ago(30)),
        ["backup", "Complete", "1/3", "2m"],
        id="job-complete",
    ),
    pytest.param("Job", job("Failed"), ["backup", "Failed"], id="job-failed"),
    pytest.param("Job", job("Suspended"), ["backup", "Suspended"], id="job-suspended"),
    pytest.param(
        "Job",
        job("Suspended", metadata__deletionTimestamp=ago(1)),
        ["backup", "Terminating"],
        id="job-terminating",
    ),
    pytest.param(
        "Job",
        job(spec__parallelism=3, spec__completions=None),
        ["backup", "Running", "1/1 of 3"],
        id="job-work-queue",
    ),
    pytest.param(
        "Job", {"metadata": meta("j")}, ["j", "Running", "0/1", "", "5m"], id="job-not-started"
    ),
    pytest.param(
        "Service",
        service("ClusterIP", selector={"app": "web", "tier": "front"}),
        ["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,443/TCP", "10m", "app=web,tier=front"],
        id="service-clusterip",
    ),
    pytest.param(
        "Service",
        service(
            "NodePort",
            ports=[
                {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"},
            ],
        ),
        ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "10m", "<none>"],
        id="service-nodeport",
    ),
    pytest.param(
        "Service",
        service("LoadBalancer"),
        ["web", "LoadBalancer", "10.96.0.10", "<pending>"],
        id="service-lb-pending",
    ),
    pytest.param(
        "Service",
        {
            **service("LoadBalancer", externalIPs=["198.51.100.1"]),
            "status": {
                "loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}
            },
        },
        ["web", "LoadBalancer", "10.96.0.10", "203.0.113.7,lb.example.com,198.51.100.1"],
        id="service-lb-ready",
    ),
    pytest.param(
        "Service",
        {
            "metadata": meta("ext"),
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        },
        ["ext", "ExternalName", "<none>", "db.example.com", "<none>"],
        id="service-externalname",
    ),
    pytest.param(
        "Service",
        service("ClusterIP", clusterIP="None", clusterIPs=["None"]),
        ["web", "ClusterIP", "None"],
        id="service-headless",
    ),
    pytest.param(
        "Service",
        {"metadata": {"name": "s"}},
        ["s", "ClusterIP", "<none>", "<none>", "<none>", "<unknown>", "<none>"],
        id="service-empty",
    ),
    pytest.param(
        "Endpoints",
        endpoints("10.0.0.1", "10.0.0.2", ports=[80]),
        ["web", "10.0.0.1:80,10.0.0.2:80", "5m"],
        id="endpoints",
    ),
    pytest.param(
        "Endpoints",
        endpoints("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", ports=[80, 81]),
        ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 5 more..."],
        id="endpoints-many",
    ),
    pytest.param(
        "Endpoints",
        endpoints("fd00::1", ports=[8080]),
        ["web", "[fd00::1]:8080"],
        id="endpoints-ipv6",
    ),
    pytest.param(
        "Endpoints", endpoints("10.0.0.1"), ["web", "10.0.0.1"], id="endpoints-headless-no-ports"
    ),
    pytest.param(
        "Endpoints",
        {"metadata": meta("web"), "subsets": []},
        ["web", "<none>"],
        id="endpoints-empty",
    ),
    pytest.param(
        "Endpoints", endpoints(ports=[80]), ["web", "<none>"], id="endpoints-no-ready-addresses"
    ),
    pytest.param(
        "ConfigMap",
        {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
        ["cfg", 3, "5m"],
        id="configmap",
    ),
    pytest.param("ConfigMap", {"metadata": meta("cfg")}, ["cfg", 0, "5m"], id="configmap-empty"),
    pytest.param(
        "Secret",
        {
            "metadata": meta("tls"),
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""},
        },
        ["tls", "kubernetes.io/tls", 2, "5m"],
        id="secret",
    ),
    pytest.param("Secret", {"metadata": meta("s")}, ["s", "Opaque", 0, "5m"], id="secret-empty"),
    pytest.param(
        "ServiceAccount",
        {"metadata": meta("default"), "secrets": [{"name": "t"}]},
        ["default", 1, "5m"],
        id="serviceaccount",
    ),
    pytest.param(
        "Lease",
        {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "replica-2_abc"}},
        ["kube-scheduler", "replica-2_abc", "5m"],
        id="lease",
    ),
    pytest.param("Lease", {"metadata": meta("l")}, ["l", "", "5m"], id="lease-unheld"),
    pytest.param(
        "ResourceQuota",
        {
            "metadata": meta("quota"),
            "status": {
                "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi"},
                "used": {"pods": "1", "requests.cpu": "500m"},
            },
        },
        ["quota", "5m", "pods: 1/10, requests.cpu: 500m/2", "limits.memory: 0/2Gi"],
        id="resourcequota",
    ),
    pytest.param(
        "ResourceQuota", {"metadata": meta("q")}, ["q", "5m", "", ""], id="resourcequota-empty"
    ),
    pytest.param(
        "LimitRange",
        {"metadata": {"name": "lr", "creationTimestamp": "2026-01-01T00:00:00Z"}},
        ["lr", "2026-01-01T00:00:00Z"],
        id="limitrange",
    ),
    pytest.param(
        "Role",
        {"metadata": {"name": "r", "creationTimestamp": "2026-01-01T02:00:00+02:00"}},
        ["r", "2026-01-01T00:00:00Z"],
        id="role-created-at-utc",
    ),
    pytest.param(
        "ClusterRole",
        {"metadata": {"name": "admin"}},
        ["admin", "<unknown>"],
        id="clusterrole-no-timestamp",
    ),
    pytest.param(
        "RoleBinding",
        {
            "metadata": meta("rb"),
            "roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
            ],
        },
        ["rb", "Role/reader", "5m", "alice, bob", "devs", "build/ci"],
        id="rolebinding",
    ),
    pytest.param(
        "ClusterRoleBinding",
        {"metadata": meta("crb"), "roleRef": {"kind": "ClusterRole", "name": "admin"}},
        ["crb", "ClusterRole/admin", "5m", "", "", ""],
        id="clusterrolebinding-no-subjects",
    ),
    pytest.param(
        "Widget",
        {"metadata": {"name": "w", "creationTimestamp": "2026-01-01T00:00:00Z"}},
        ["w", "2026-01-01T00:00:00Z"],
        id="default-kind",
    ),
]


@pytest.mark.parametrize(("kind", "obj", "expected"), CASES)
def test_cells(kind: str, obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells(kind, obj)[: len(expected)] == expected


EVENT_CASES = [
    pytest.param(
        {
            "metadata": meta("web-1.17a"),
            "type": "Normal",
            "reason": "Started",
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "node-a"},
            "message": "Started container app\n",
            "firstTimestamp": ago(3600),
            "lastTimestamp": ago(60),
            "count": 4,
        },
        [
            "60s",
            "Normal",
            "Started",
            "pod/web-1",
            "spec.containers{app}",
            "kubelet, node-a",
            "Started container app",
            "60m",
            4,
            "web-1.17a",
        ],
        id="core-event",
    ),
    pytest.param(
        {
            "metadata": meta("e"),
            "type": "Warning",
            "reason": "FailedScheduling",
            "involvedObject": {"kind": "Pod", "name": "p"},
            "eventTime": "2026-01-02T11:57:59.500000Z",
            "series": {"count": 7, "lastObservedTime": "2026-01-02T11:59:50.000000Z"},
            "reportingController": "ketch-scheduler",
            "message": "0/3 nodes are available",
        },
        [
            "10s",
            "Warning",
            "FailedScheduling",
            "pod/p",
            "",
            "ketch-scheduler",
            "0/3 nodes are available",
            "2m",
            7,
            "e",
        ],
        id="series-event",
    ),
    pytest.param(
        {"metadata": meta("e"), "involvedObject": {"kind": "Node"}, "firstTimestamp": ago(5)},
        ["5s", "", "", "node", "", "", "", "5s", 1, "e"],
        id="singleton-without-name",
    ),
    pytest.param({}, ["<unknown>", "", "", "", "", "", "", "<unknown>", 1, ""], id="empty-event"),
]


@pytest.mark.parametrize(("obj", "expected"), EVENT_CASES)
def test_event_cells(obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells("Event", obj) == expected


def _names(kind: str, priority: int) -> list[str]:
    table = table_for(kind, [], now=NOW)
    return [c["name"] for c in table["columnDefinitions"] if c["priority"] == priority]


COLUMN_CASES = [
    pytest.param(
        "Pod",
        ["Name", "Ready", "Status", "Restarts", "Age"],
        ["IP", "Node", "Nominated Node", "Readiness Gates"],
        id="pod",
    ),
    pytest.param("Namespace", ["Name", "Status", "Age"], [], id="namespace"),
    pytest.param(
        "Node",
        ["Name", "Status", "Roles", "Age", "Version"],
        ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
        id="node",
    ),
    pytest.param(
        "Deployment",
        ["Name", "Ready", "Up-to-date", "Available", "Age"],
        ["Containers", "Images", "Selector"],
        id="deployment",
    ),
    pytest.param(
        "ReplicaSet",
        ["Name", "Desired", "Current", "Ready", "Age"],
        ["Containers", "Images", "Selector"],
        id="replicaset",
    ),
    pytest.param(
        "DaemonSet",
        ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"],
        ["Containers", "Images", "Selector"],
        id="daemonset",
    ),
    pytest.param(
        "StatefulSet", ["Name", "Ready", "Age"], ["Containers", "Images"], id="statefulset"
    ),
    pytest.param(
        "Job",
        ["Name", "Status", "Completions", "Duration", "Age"],
        ["Containers", "Images", "Selector"],
        id="job",
    ),
    pytest.param(
        "Service",
        ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"],
        ["Selector"],
        id="service",
    ),
    pytest.param("Endpoints", ["Name", "Endpoints", "Age"], [], id="endpoints"),
    pytest.param("ConfigMap", ["Name", "Data", "Age"], [], id="configmap"),
    pytest.param("Secret", ["Name", "Type", "Data", "Age"], [], id="secret"),
    pytest.param("ServiceAccount", ["Name", "Secrets", "Age"], [], id="serviceaccount"),
    pytest.param(
        "Event",
        ["Last Seen", "Type", "Reason", "Object", "Message"],
        ["Subobject", "Source", "First Seen", "Count", "Name"],
        id="event",
    ),
    pytest.param("Lease", ["Name", "Holder", "Age"], [], id="lease"),
    pytest.param("ResourceQuota", ["Name", "Age", "Request", "Limit"], [], id="resourcequota"),
    pytest.param("LimitRange", ["Name", "Created At"], [], id="limitrange"),
    pytest.param("Role", ["Name", "Created At"], [], id="role"),
    pytest.param("ClusterRole", ["Name", "Created At"], [], id="clusterrole"),
    pytest.param(
        "RoleBinding",
        ["Name", "Role", "Age"],
        ["Users", "Groups", "ServiceAccounts"],
        id="rolebinding",
    ),
    pytest.param(
        "ClusterRoleBinding",
        ["Name", "Role", "Age"],
        ["Users", "Groups", "ServiceAccounts"],
        id="clusterrolebinding",
    ),
    pytest.param("Widget", ["Name", "Created At"], [], id="default"),
]


@pytest.mark.parametrize(("kind", "normal", "wide"), COLUMN_CASES)
def test_columns(kind: str, normal: list[str], wide: list[str]) -> None:
    assert _names(kind, 0) == normal
    assert _names(kind, 1) == wide


@pytest.mark.parametrize("kind", [*sorted(PRINTERS), "Widget"])
def test_column_definition_shape(kind: str) -> None:
    columns = table_for(kind, [], now=NOW)["columnDefinitions"]
    for column in columns:
        assert set(column) == {"name", "type", "format", "description", "priority"}
        assert column["type"] in ("string", "integer", "boolean", "date")
        assert column["description"]
    name_columns = [c for c in columns if c["format"] == "name"]
    assert [c["name"] for c in name_columns] == ["Name"]
    if kind == "Event":
        assert name_columns[0]["priority"] == 1
    else:
        assert columns[0] == name_columns[0]


def test_created_at_column_is_a_date() -> None:
    columns = table_for("Role", [], now=NOW)["columnDefinitions"]
    assert columns[1] == {
        "name": "Created At",
        "type": "date",
        "format": "",
        "description": columns[1]["description"],
        "priority": 0,
    }


# --- the Table envelope and includeObject ---------------------------------------------------

OBJ = {
    "kind": "ConfigMap",
    "apiVersion": "v1",
    "metadata": meta("cfg", labels={"app": "web"}, resourceVersion="7", uid="u-1"),
    "data": {"k": "v"},
}


def test_envelope_and_metadata_rows() -> None:
    table = table_for(
        "ConfigMap", [OBJ], list_meta={"resourceVersion": "42", "continue": "c"}, now=NOW
    )
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "c"}
    assert table["rows"] == [
        {
            "cells": ["cfg", 1, "5m"],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": OBJ["metadata"],
            },
        }
    ]
    json.dumps(table)


def test_include_object_full() -> None:
    row = table_for("ConfigMap", [OBJ], include_object="Object", now=NOW)["rows"][0]
    assert row["object"] == OBJ


def test_include_object_none() -> None:
    row = table_for("ConfigMap", [OBJ], include_object="None", now=NOW)["rows"][0]
    assert row == {"cells": ["cfg", 1, "5m"]}


@pytest.mark.parametrize("value", ["", "metadata", "Full", "none"])
def test_include_object_unknown_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="includeObject"):
        table_for("ConfigMap", [OBJ], include_object=value, now=NOW)


def test_metadata_row_does_not_alias_object_metadata() -> None:
    obj = {"metadata": {"name": "x"}}
    row = table_for("Widget", [obj], now=NOW)["rows"][0]
    row["object"]["metadata"]["name"] = "changed"
    assert obj["metadata"]["name"] == "x"


def test_empty_list_and_default_list_meta() -> None:
    table = table_for("Pod", [], now=NOW)
    assert table["rows"] == []
    assert table["metadata"] == {}
    assert len(table["columnDefinitions"]) == 9


def test_rows_keep_order_and_naive_now_is_utc() -> None:
    objs = [{"metadata": meta(n, 90)} for n in ("b", "a", "c")]
    table = table_for("Namespace", objs, now=NOW.replace(tzinfo=None))
    assert [r["cells"] for r in table["rows"]] == [
        ["b", "Active", "90s"],
        ["a", "Active", "90s"],
        ["c", "Active", "90s"],
    ]


def test_future_timestamp_is_invalid_age() -> None:
    obj = {"metadata": {"name": "x", "creationTimestamp": ago(-60)}}
    assert cells("Namespace", obj) == ["x", "Active", "<invalid>"]


# --- robustness -----------------------------------------------------------------------------

MALFORMED = [
    pytest.param({}, id="empty"),
    pytest.param({"metadata": None, "spec": None, "status": None}, id="nulls"),
    pytest.param(
        {"metadata": [], "spec": "x", "status": 3, "data": [1], "subsets": {}}, id="wrong-types"
    ),
    pytest.param(
        {
            "metadata": {"name": 5, "creationTimestamp": "yesterday", "labels": ["a"]},
            "spec": {
                "containers": "nope",
                "replicas": "3",
                "ports": [None, 5, {"port": "x"}],
                "selector": ["a"],
                "template": {"spec": {"containers": [None]}},
                "readinessGates": [{}],
                "initContainers": [{"restartPolicy": "Always"}],
                "unschedulable": "yes",
            },
            "status": {
                "conditions": [None, "x", {"type": None}],
                "containerStatuses": [
                    {"state": None, "restartCount": None},
                    {"state": {"terminated": None}, "lastState": 1},
                ],
                "initContainerStatuses": [{"state": {"waiting": {"reason": 3}}}],
                "hard": {"pods": None},
                "podIPs": [{"ip": None}],
                "startTime": 7,
            },
            "subsets": [{"addresses": [{"ip": None}], "ports": [{"port": None}]}],
            "series": {},
            "roleRef": "x",
            "subjects": [{"kind": "ServiceAccount"}],
        },
        id="garbage-fields",
    ),
]


@pytest.mark.parametrize("kind", [*sorted(PRINTERS), "Widget"])
@pytest.mark.parametrize("obj", MALFORMED)
def test_malformed_objects_never_raise(kind: str, obj: dict[str, Any]) -> None:
    table = table_for(kind, [obj], include_object="Object", now=NOW)
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])
    json.dumps(table)


_FIELD_NAMES = st.sampled_from(
    [
        "metadata",
        "spec",
        "status",
        "name",
        "creationTimestamp",
        "deletionTimestamp",
        "labels",
        "containers",
        "initContainers",
        "containerStatuses",
        "initContainerStatuses",
        "state",
        "waiting",
        "terminated",
        "running",
        "lastState",
        "reason",
        "ready",
        "started",
        "restartCount",
        "conditions",
        "type",
        "replicas",
        "selector",
        "matchLabels",
        "matchExpressions",
        "template",
        "ports",
        "port",
        "nodePort",
        "subsets",
        "addresses",
        "ip",
        "hard",
        "used",
        "series",
        "count",
        "roleRef",
        "subjects",
        "data",
        "nodeInfo",
        "phase",
    ]
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.text(max_size=4)
    | st.sampled_from(["True", "Ready", "Always", ago(30)]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_FIELD_NAMES, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([*sorted(PRINTERS), "Widget"]),
    obj=st.dictionaries(_FIELD_NAMES, _JSON, max_size=5),
)
def test_random_objects_never_raise(kind: str, obj: dict[str, Any]) -> None:
    table = table_for(kind, [obj], now=NOW)
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])
    json.dumps(table)


# --- human_duration -------------------------------------------------------------------------

MINUTE, HOUR, DAY = 60, 3600, 86400


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(-5, "<invalid>", id="future"),
        pytest.param(-2, "<invalid>", id="minus-2s"),
        pytest.param(-1.5, "0s", id="skew-tolerated"),
        pytest.param(0, "0s", id="zero"),
        pytest.param(5.9, "5s", id="truncates"),
        pytest.param(119, "119s", id="under-two-minutes"),
        pytest.param(2 * MINUTE, "2m", id="two-minutes"),
        pytest.param(3 * MINUTE + 2, "3m2s", id="minutes-seconds"),
        pytest.param(9 * MINUTE + 59, "9m59s", id="last-with-seconds"),
        pytest.param(10 * MINUTE + 30, "10m", id="ten-minutes-drops-seconds"),
        pytest.param(2 * HOUR + 5 * MINUTE, "125m", id="minutes-up-to-three-hours"),
        pytest.param(3 * HOUR, "3h", id="three-hours"),
        pytest.param(3 * HOUR + 5 * MINUTE, "3h5m", id="hours-minutes"),
        pytest.param(8 * HOUR + 5 * MINUTE, "8h", id="eight-hours-drops-minutes"),
        pytest.param(47 * HOUR, "47h", id="under-two-days"),
        pytest.param(2 * DAY, "2d", id="two-days"),
        pytest.param(3 * DAY + 4 * HOUR, "3d4h", id="days-hours"),
        pytest.param(8 * DAY + 4 * HOUR, "8d", id="eight-days-drops-hours"),
        pytest.param(729 * DAY, "729d", id="under-two-years"),
        pytest.param(730 * DAY, "2y", id="two-years"),
        pytest.param(740 * DAY, "2y10d", id="years-days"),
        pytest.param(8 * 365 * DAY + 10 * DAY, "8y", id="eight-years-drops-days"),
        pytest.param(float("nan"), "<invalid>", id="nan"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected
