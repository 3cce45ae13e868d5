"""Integration: the controller-manager as a real process (two instances, one leading) behind a
real ``ketch up``, driven by the real kubectl and the official Python client — with no node
agents at all: a small "fake kubelet" in the test marks bound pods Running and Ready when a
test needs a rollout to progress.

Covers issue 8's "Done when": Deployments → ReplicaSets → pods with owner references and
pod-template-hash, scale, set image (revision 2), rollout history and undo, a deleted pod
replaced, background/foreground/orphan deletion, a Job's pods, a StatefulSet's NAME-0, a
namespace emptied and gone, events; and kill -9 of the leading controller-manager during a
rollout (the standby finishes it, no ReplicaSet exceeds its bounds, no pod created twice).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch

from ketch.cluster import Cluster
from tests.kube import Kubectl, poll

pytestmark = pytest.mark.integration


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ketch-cm") / "cluster", port=0, controller_managers=2,
                schedulers=1, **_no_nodes())
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


def _no_nodes() -> dict[str, int]:
    """``nodes=0`` once ketch up starts node agents (the fake kubelet below stands in)."""
    import inspect
    return {"nodes": 0} if "nodes" in inspect.signature(Cluster).parameters else {}


@pytest.fixture(scope="module")
def kubectl(ketch: Cluster) -> Kubectl:
    return Kubectl(ketch.kubeconfig)


@pytest.fixture(scope="module")
def api(ketch: Cluster) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(ketch.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as c:
        yield c


@pytest.fixture(scope="module", autouse=True)
def kubelet(api: client.ApiClient) -> Iterator[FakeKubelet]:
    k = FakeKubelet(api)
    k.start()
    try:
        yield k
    finally:
        k.stop()


class FakeKubelet:
    """Registers two Ready Node objects (no agents); marks every bound pod whose labels match
    one of ``ready_selectors`` Running and Ready, and finishes the graceful deletion of pods
    on its nodes — what node agents would do."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.ready_selectors: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        for name in ("fake-1", "fake-2"):
            self.core.create_node({"metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name}}, "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]}})
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._finish_deletions()
            for sel in list(self.ready_selectors):
                try:
                    pods = self.core.list_pod_for_all_namespaces(label_selector=sel).items
                except client.ApiException:
                    continue
                for p in pods:
                    if p.spec.node_name and not p.metadata.deletion_timestamp and (
                            p.status.phase != "Running"):
                        self._ready(p)
            self._stop.wait(0.2)

    def _finish_deletions(self) -> None:
        """What a kubelet does for a pod being deleted on its node: stop it, then delete the
        object with grace 0 (without this, bound pods would stay Terminating forever)."""
        try:
            pods = self.core.list_pod_for_all_namespaces().items
        except client.ApiException:
            return
        for p in pods:
            if p.spec.node_name in ("fake-1", "fake-2") and p.metadata.deletion_timestamp:
                try:
                    self.core.delete_namespaced_pod(
                        p.metadata.name, p.metadata.namespace, grace_period_seconds=0,
                        body=client.V1DeleteOptions(
                            preconditions=client.V1Preconditions(uid=p.metadata.uid)))
                except client.ApiException:
                    pass

    def _ready(self, p: Any) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"status": {"phase": "Running", "podIP": "127.64.0.9", "startTime": now,
                           "conditions": [{"type": t, "status": "True",
                                           "lastTransitionTime": now}
                                          for t in ("PodScheduled", "Initialized",
                                                    "ContainersReady", "Ready")],
                           "containerStatuses": [{"name": c.name, "image": c.image,
                                                  "imageID": "", "ready": True,
                                                  "restartCount": 0, "started": True,
                                                  "state": {"running": {"startedAt": now}}}
                                                 for c in p.spec.containers]}}
        try:
            self.core.patch_namespaced_pod_status(p.metadata.name, p.metadata.namespace, body)
        except client.ApiException:
            pass


def _pods(kubectl: Kubectl, selector: str, ns: str = "default") -> list[dict[str, Any]]:
    out = kubectl.json("get", "pods", "-n", ns, "-l", selector)
    return [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")]


def test_deployment_to_pods_scale_image_history_undo(kubectl: Kubectl,
                                                      kubelet: FakeKubelet) -> None:
    kubelet.ready_selectors.add("app=web")
    kubectl.run("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3")
    kubectl.run("rollout", "status", "deploy/web", "--timeout=60s", timeout=90)
    rs = kubectl.json("get", "rs", "-l", "app=web")["items"]
    assert len(rs) == 1
    rs_hash = rs[0]["metadata"]["labels"]["pod-template-hash"]
    dep = kubectl.json("get", "deploy", "web")
    [ref] = rs[0]["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "Deployment", "web", dep["metadata"]["uid"], True)
    pods = _pods(kubectl, "app=web")
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["labels"]["pod-template-hash"] == rs_hash
        assert p["metadata"]["ownerReferences"][0]["name"] == rs[0]["metadata"]["name"]

    kubectl.run("scale", "deploy/web", "--replicas=5")
    poll(lambda: len(_pods(kubectl, "app=web")) == 5, timeout=30)
    kubectl.run("scale", "deploy/web", "--replicas=2")
    poll(lambda: len(_pods(kubectl, "app=web")) == 2, timeout=30)

    kubectl.run("set", "image", "deploy/web", "nginx=nginx:1.27")
    kubectl.run("rollout", "status", "deploy/web", "--timeout=60s", timeout=90)
    sets = kubectl.json("get", "rs", "-l", "app=web")["items"]
    revisions = {s["metadata"]["annotations"]["deployment.kubernetes.io/revision"]:
                 s["spec"]["template"]["spec"]["containers"][0]["image"] for s in sets}
    assert revisions == {"1": "nginx:1.25", "2": "nginx:1.27"}
    history = kubectl.run("rollout", "history", "deploy/web").stdout
    assert "REVISION" in history and "1 " in history and "2 " in history
    kubectl.run("rollout", "undo", "deploy/web")
    kubectl.run("rollout", "status", "deploy/web", "--timeout=60s", timeout=90)
    image = kubectl.json("get", "deploy", "web")["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "nginx:1.25"
    sets = kubectl.json("get", "rs", "-l", "app=web")["items"]
    by_rev = {s["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: s
              for s in sets}
    assert by_rev["3"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    gone = kubectl.run("rollout", "undo", "deploy/web", "--to-revision=99", check=False)
    assert gone.returncode != 0 and "unable to find specified revision 99" in gone.stderr

    events = kubectl.run("get", "events").stdout
    assert "ScalingReplicaSet" in events and "SuccessfulCreate" in events
    described = kubectl.run("describe", "deploy", "web").stdout
    assert "ScalingReplicaSet" in described and "NewReplicaSetAvailable" in described


def test_a_deleted_pod_is_replaced(kubectl: Kubectl) -> None:
    kubectl.run("create", "deployment", "keep", "--image=nginx", "--replicas=2")
    before = poll(lambda: (p := _pods(kubectl, "app=keep")) and len(p) == 2 and p, timeout=30)
    victim = before[0]["metadata"]["name"]
    kubectl.run("delete", "pod", victim, "--wait=false")
    after = poll(lambda: (p := _pods(kubectl, "app=keep")) and len(p) == 2 and
                 victim not in {x["metadata"]["name"] for x in p} and p, timeout=30)
    assert len(after) == 2


@pytest.mark.parametrize("policy", ["background", "foreground", "orphan"])
def test_cascading_deletion(kubectl: Kubectl, policy: str) -> None:
    name = f"casc-{policy}"
    kubectl.run("create", "deployment", name, "--image=nginx", "--replicas=2")
    poll(lambda: len(_pods(kubectl, f"app={name}")) == 2, timeout=30)
    kubectl.run("delete", "deploy", name, f"--cascade={policy}", timeout=90)
    poll(lambda: not kubectl.json("get", "deploy", "-l", f"app={name}")["items"] and
         kubectl.run("get", "deploy", name, check=False).returncode != 0, timeout=30)
    if policy == "orphan":
        rs = kubectl.json("get", "rs", "-l", f"app={name}")["items"]
        assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
        assert len(_pods(kubectl, f"app={name}")) == 2
        kubectl.run("delete", "rs", "-l", f"app={name}")
    poll(lambda: not _pods(kubectl, f"app={name}") and
         not kubectl.json("get", "rs", "-l", f"app={name}")["items"], timeout=60)


def test_a_jobs_pods_and_a_statefulsets_first_ordinal(kubectl: Kubectl) -> None:
    kubectl.run("create", "job", "once", "--image=busybox", "--", "true")
    pods = poll(lambda: _pods(kubectl, "job-name=once"), timeout=30)
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"replicas": 2, "serviceName": "db",
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    kubectl.run("apply", "-f", "-", input=json.dumps(sts))
    poll(lambda: kubectl.run("get", "pod", "db-0", check=False).returncode == 0, timeout=30)
    # OrderedReady: db-1 waits for db-0 to be Running and Ready (nothing runs it here)
    assert kubectl.run("get", "pod", "db-1", check=False).returncode != 0


def test_a_deleted_namespace_is_emptied_and_gone(kubectl: Kubectl) -> None:
    kubectl.run("create", "namespace", "scratch-cm")
    poll(lambda: kubectl.run("get", "sa", "default", "-n", "scratch-cm",
                             check=False).returncode == 0, timeout=30)
    kubectl.run("create", "deployment", "x", "--image=nginx", "-n", "scratch-cm")
    kubectl.run("create", "configmap", "y", "-n", "scratch-cm")
    poll(lambda: _pods(kubectl, "app=x", "scratch-cm"), timeout=30)
    kubectl.run("delete", "namespace", "scratch-cm", "--wait=true", "--timeout=60s",
                timeout=90)
    assert kubectl.run("get", "namespace", "scratch-cm", check=False).returncode != 0


def test_kill_the_leading_controller_manager_during_a_rollout(
        ketch: Cluster, kubectl: Kubectl, api: client.ApiClient,
        kubelet: FakeKubelet) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    name, replicas, surge = "roll", 6, 1
    kubelet.ready_selectors.add(f"app={name}")
    kubectl.run("create", "deployment", name, "--image=nginx:1", f"--replicas={replicas}")
    kubectl.run("patch", "deploy", name, "-p", json.dumps({"spec": {"strategy": {
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 0}}}}))
    kubectl.run("rollout", "status", f"deploy/{name}", "--timeout=60s", timeout=90)

    created: list[tuple[str, str]] = []
    totals: list[int] = []
    stop = threading.Event()

    def observe() -> None:
        w = watch.Watch()
        rv = core.list_namespaced_pod("default").metadata.resource_version
        for ev in w.stream(core.list_namespaced_pod, "default", resource_version=rv,
                           label_selector=f"app={name}", timeout_seconds=120):
            if ev["type"] == "ADDED":
                pod = ev["object"]
                created.append((pod.metadata.name, pod.spec.containers[0].image))
            if stop.is_set():
                w.stop()

    def observe_sets() -> None:
        w = watch.Watch()
        for ev in w.stream(apps.list_namespaced_replica_set, "default",
                           label_selector=f"app={name}", timeout_seconds=120):
            sets = apps.list_namespaced_replica_set("default",
                                                    label_selector=f"app={name}").items
            totals.append(sum(s.spec.replicas or 0 for s in sets))
            if stop.is_set():
                w.stop()

    threads = [threading.Thread(target=observe, daemon=True),
               threading.Thread(target=observe_sets, daemon=True)]
    for t in threads:
        t.start()
    leader = next(c.name for c in ketch.components("controller-manager")
                  if ketch.leading(c.name))
    standby = next(c.name for c in ketch.components("controller-manager") if c.name != leader)
    kubectl.run("set", "image", f"deploy/{name}", "nginx=nginx:2")
    poll(lambda: len(kubectl.json("get", "rs", "-l", f"app={name}")["items"]) == 2,
         timeout=30)
    ketch.stop(leader, signal.SIGKILL)
    try:
        poll(lambda: ketch.leading(standby), timeout=30)
        kubectl.run("rollout", "status", f"deploy/{name}", "--timeout=90s", timeout=120)
        pods = _pods(kubectl, f"app={name}")
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        assert len(pods) == replicas and images == {"nginx:2"}
    finally:
        stop.set()
        ketch.start(leader, _quiet)
        ketch.wait_ready(leader, _quiet)
    new = [n for n, image in created if image == "nginx:2"]
    assert len(new) == replicas, f"{len(new)} new pods created for {replicas} replicas: {new}"
    assert totals and max(totals) <= replicas + surge, f"replica totals {totals}"
