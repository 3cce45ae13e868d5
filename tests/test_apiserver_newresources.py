"""Integration: cronjobs, poddisruptionbudgets, priorityclasses, endpointslices,
controllerrevisions and pods/eviction through the real kubectl 1.37 and real HTTPS against a
real ``ketch up`` cluster.  One cluster for the module; each kubectl call has a fresh cache.

Budgets' statuses are written here through ``/status`` with the values a disruption
controller computes from the pods (which are held unschedulable and given a Running, Ready
status), so the checks hold whether or not a controller-manager runs beside the apiserver.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from certs.layout import admin_paths
from ketch.cluster import Cluster
from tests.apiclient import APIClient
from tests.kube import Kubectl

pytestmark = pytest.mark.integration

NS = "default"
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # These tests write budget statuses by hand, which the disruption controller would
    # recompute, and bind pods to nodes that do not exist, which PodGC would clean up.
    c = Cluster(tmp_path_factory.mktemp("ketch") / "cluster", port=0, schedulers=0,
                nodes=0, controllers="*,-disruption,-podgc,-nodelifecycle,-taint-eviction")
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture
def kubectl(ketch: Cluster) -> Kubectl:
    return Kubectl(ketch.kubeconfig)


def header(out: str) -> list[str]:
    return out.splitlines()[0].split()


def rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines()[1:]}


def test_cronjob_from_the_generator(kubectl: Kubectl) -> None:
    kubectl.run("create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *",
                "--", "echo", "hi")  # a protobuf body
    cj = kubectl.json("get", "cronjob", "tick")
    spec = cj["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"], spec["suspend"],
            spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (
        "*/1 * * * *", "Allow", False, 3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert cj["metadata"]["generation"] == 1
    out = kubectl.run("get", "cj").stdout
    assert header(out) == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                           "SCHEDULE", "AGE"]
    assert rows(out)["tick"][1:8] == ["*/1", "*", "*", "*", "*", "<none>", "False"]
    assert "cronjob.batch/tick" in kubectl.run("get", "all").stdout
    explained = kubectl.run("explain", "cronjob.spec.schedule").stdout
    assert "KIND:       CronJob" in explained and "FIELD: schedule <string>" in explained
    assert "Cron format" in explained
    kubectl.run("create", "job", "tick-now", "--from=cronjob/tick")
    job = kubectl.json("get", "job", "tick-now")
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "CronJob", "tick", cj["metadata"]["uid"])
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    bad = kubectl.run("create", "cronjob", "bad", "--image=busybox", "--schedule=61 * * * *",
                      check=False)
    assert bad.returncode != 0
    assert ('CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "61 * * * *": end '
            "of range (61) above maximum (59): 61") in bad.stderr
    kubectl.run("patch", "cronjob", "tick", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    assert kubectl.json("get", "cronjob", "tick")["metadata"]["generation"] == 2


PRIORITY_POD = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata: {name: NAME}
    spec:
      priorityClassName: CLASS
      containers: [{name: c, image: busybox}]
""")


def test_priority_classes_and_pod_priority(kubectl: Kubectl) -> None:
    kubectl.run("create", "priorityclass", "batch-high", "--value=1000",
                "--description=jobs first", "--preemption-policy=Never")
    out = kubectl.run("get", "pc").stdout
    assert header(out) == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    table = rows(out)
    assert table["batch-high"][1:3] == ["1000", "false"] and table["batch-high"][4] == "Never"
    assert table["system-node-critical"][1] == "2000001000"
    assert table["system-cluster-critical"][1] == "2000000000"
    kubectl.run("apply", "-f", "-",
                input=PRIORITY_POD.replace("NAME", "urgent").replace("CLASS", "batch-high"))
    spec = kubectl.json("get", "pod", "urgent")["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (1000, "Never")
    missing = kubectl.run("apply", "-f", "-", check=False,
                          input=PRIORITY_POD.replace("NAME", "lost").replace("CLASS", "nope"))
    assert missing.returncode != 0
    assert ('pods "lost" is forbidden: no PriorityClass with name nope was found'
            in missing.stderr)
    too_high = kubectl.run("create", "priorityclass", "greedy", "--value=1000000001",
                           check=False)
    assert "maximum allowed value of a user defined priority is 1000000000" in too_high.stderr
    kubectl.run("delete", "pod", "urgent", "--wait=false")


def test_endpointslices_and_controller_revisions_print(kubectl: Kubectl) -> None:
    # The revision's owner must exist: the garbage collector removes dangling dependents.
    kubectl.run("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: web}
        spec:
          replicas: 0
          serviceName: web
          selector: {matchLabels: {app: rev-web}}
          template:
            metadata: {labels: {app: rev-web}}
            spec: {containers: [{name: c, image: nginx}]}
        """))
    uid = kubectl.json("get", "statefulset", "web")["metadata"]["uid"]
    kubectl.run("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-x7k2p
          labels: {kubernetes.io/service-name: web}
        addressType: IPv4
        endpoints:
        - addresses: [127.0.1.5]
          conditions: {ready: true}
        - addresses: [127.0.1.6]
        ports: [{name: http, port: 8080}]
        ---
        apiVersion: apps/v1
        kind: ControllerRevision
        metadata:
          name: web-5d8b
          ownerReferences:
          - {apiVersion: apps/v1, kind: StatefulSet, name: web, uid: UID, controller: true}
        data: {spec: {template: {$patch: replace}}}
        revision: 2
        """).replace("UID", uid))
    out = kubectl.run("get", "endpointslices", "-l", "kubernetes.io/service-name=web").stdout
    assert header(out) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert rows(out)["web-x7k2p"][1:4] == ["IPv4", "8080", "127.0.1.5,127.0.1.6"]
    assert kubectl.json("get", "endpointslice", "web-x7k2p")["ports"][0]["protocol"] == "TCP"
    out = kubectl.run("get", "controllerrevisions").stdout
    assert header(out) == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert rows(out)["web-5d8b"][1:3] == ["statefulset.apps/web", "2"]
    changed = kubectl.run("patch", "controllerrevision", "web-5d8b", "--type=merge", "-p",
                          '{"data":{"other":1}}', check=False)
    assert changed.returncode != 0 and "data: Invalid value" in changed.stderr
    assert "field is immutable" in changed.stderr
    resources = kubectl.run("api-resources").stdout
    for needle in ("cronjobs", "cj", "poddisruptionbudgets", "pdb", "priorityclasses", "pc",
                   "endpointslices", "controllerrevisions"):
        assert needle in resources


def _ready_pod(name: str, app: str, node: str | None = None) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    else:  # no node will ever match: no scheduler or node agent touches these pods
        spec["nodeSelector"] = {"ketch.test/nowhere": "true"}
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "labels": {"app": app}}, "spec": spec})


RUNNING = json.dumps({"status": {"phase": "Running", "conditions": [
    {"type": "Ready", "status": "True"}]}})


def _pods(kubectl: Kubectl, app: str, names: list[str], node: str | None = None) -> None:
    for name in names:
        kubectl.run("apply", "-f", "-", input=_ready_pod(name, app, node))
        kubectl.run("patch", "pod", name, "--subresource=status", "--type=merge", "-p",
                    RUNNING)


def _budget_status(kubectl: Kubectl, name: str, healthy: int, desired: int) -> None:
    status = {"observedGeneration": 1, "currentHealthy": healthy, "desiredHealthy": desired,
              "expectedPods": healthy, "disruptionsAllowed": max(healthy - desired, 0)}
    kubectl.run("patch", "pdb", name, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": status}))


async def test_eviction_through_the_api(ketch: Cluster, kubectl: Kubectl) -> None:
    kubectl.run("create", "pdb", "strict", "--selector=app=strict", "--min-available=2")
    kubectl.run("create", "pdb", "loose", "--selector=app=loose", "--max-unavailable=1")
    out = kubectl.run("get", "pdb").stdout
    assert header(out) == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                           "DISRUPTIONS", "AGE"]
    assert rows(out)["strict"][1:3] == ["2", "N/A"] and rows(out)["loose"][1:3] == ["N/A", "1"]
    _pods(kubectl, "strict", ["s1", "s2"])
    _pods(kubectl, "loose", ["l1", "l2"])
    _budget_status(kubectl, "strict", healthy=2, desired=2)
    _budget_status(kubectl, "loose", healthy=2, desired=1)

    def eviction(name: str) -> dict[str, Any]:
        return {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name, "namespace": NS},
                "deleteOptions": {"gracePeriodSeconds": 0}}

    base = f"/api/v1/namespaces/{NS}/pods"
    async with APIClient(ketch.url, admin_paths(ketch.store.certs_dir)) as api:
        st, body = await api.post(f"{base}/s1/eviction", eviction("s1"))
        assert st == 429, body
        assert (body["reason"], body["message"]) == ("TooManyRequests", VIOLATION)
        assert body["details"]["causes"] == [{
            "reason": "DisruptionBudget",
            "message": "The disruption budget strict needs 2 healthy pods and has 2 currently"}]
        assert (await api.get(f"{base}/s1")).status == 200
        st, body = await api.post(f"{base}/l1/eviction", eviction("l1"))
        assert (st, body["status"]) == (201, "Success")
        assert (await api.get(f"{base}/l1")).status == 404
        st, pdb = await api.get(f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/loose")
        assert pdb["status"]["disruptionsAllowed"] == 0 and "l1" in pdb["status"][
            "disruptedPods"]
        st, body = await api.post(f"{base}/l2/eviction", eviction("l2"))
        assert st == 429 and body["message"] == VIOLATION
        st, body = await api.post(f"{base}/l2/eviction", eviction("other"))
        assert st == 400
        assert body["message"] == "name in URL does not match name in Eviction object"


def test_drain_evicts_within_the_budget(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "drain-me"}}))
    kubectl.run("create", "pdb", "db", "--selector=app=db", "--max-unavailable=1")
    _pods(kubectl, "db", ["db-0"], node="drain-me")
    _budget_status(kubectl, "db", healthy=1, desired=0)
    p = kubectl.run("drain", "drain-me", "--force", "--grace-period=0", "--timeout=30s")
    assert "evicting pod default/db-0" in p.stderr + p.stdout
    assert "node/drain-me drained" in p.stdout
    gone = kubectl.run("get", "pod", "db-0", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert kubectl.json("get", "node", "drain-me")["spec"]["unschedulable"] is True
