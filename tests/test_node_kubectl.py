"""Integration: the real kubectl 1.37 against a real ``ketch up`` with two node agents (real
processes, real mTLS, pods as real processes on loopback pod IPs).

What a new user types first (a 2-replica nginx Deployment rolled out and serving HTTP, also
through its Service's ClusterIP), then the node's whole surface: logs (-f, --previous after a
crash), exec (output, stdin, exit code), cp, port-forward, readiness gating endpoints, liveness
restarts, CrashLoopBackOff, a Job to completion, graceful delete, an unknown image, top,
describe node (Lease, events), cordon, drain through pods/eviction with a PDB honoured,
uncordon.  The disruptive ones come last: the apiserver down for 30 s (pods keep running, status
catches up), and kill -9 of an agent (its Node goes NotReady, its pods are evicted after their
tolerationSeconds and replaced on the other node; back, it stops the replaced pods: never two
copies running).
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ketch.cluster import Cluster
from node.runtime.network import pod_port
from tests.kube import Kubectl, poll

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ketch-nodes") / "cluster", port=0, nodes=2)
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture(scope="module")
def kubectl(ketch: Cluster) -> Kubectl:
    return Kubectl(ketch.kubeconfig)


def _apply(kubectl: Kubectl, obj: Obj, tmp: Path) -> None:
    path = tmp / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(obj))
    kubectl.run("apply", "-f", str(path))


def _http(ip: str, port: int = 80, path: str = "/", timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://{ip}:{pod_port(port)}{path}", timeout=timeout) as r:
        return str(r.read().decode())


def _pods(kubectl: Kubectl, selector: str) -> list[Obj]:
    items: list[Obj] = kubectl.json("get", "pods", "-l", selector)["items"]
    return items


def _running(kubectl: Kubectl, selector: str, n: int) -> list[Obj]:
    pods = [p for p in _pods(kubectl, selector)
            if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]
    return pods if len(pods) == n else []


def _pod(kubectl: Kubectl, name: str) -> Obj:
    got: Obj = kubectl.json("get", "pod", name)
    return got


def _state(p: Obj) -> Obj:
    statuses = p["status"].get("containerStatuses") or [{}]
    state: Obj = statuses[0].get("state") or {}
    return state


def _events(kubectl: Kubectl, name: str) -> list[Obj]:
    items: list[Obj] = kubectl.json("get", "events", "--field-selector",
                                    f"involvedObject.name={name}")["items"]
    return items


# --- the README's first commands -----------------------------------------------------------


def test_a_deployment_rolls_out_and_serves_http(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.run("create", "deployment", "web", "--image=nginx", "--replicas=2")
    p = kubectl.run("rollout", "status", "deploy/web", "--timeout=120s", timeout=150)
    assert 'deployment "web" successfully rolled out' in p.stdout
    pods = poll(lambda: _running(kubectl, "app=web", 2), timeout=60)
    for pod in pods:
        assert "Welcome to nginx!" in _http(pod["status"]["podIP"])
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"
    assert {p["spec"]["nodeName"] for p in pods} <= {"node-1", "node-2"}
    kubectl.run("expose", "deployment", "web", "--port=8080", "--target-port=80")
    ip = kubectl.json("get", "service", "web")["spec"]["clusterIP"]
    page = poll(lambda: _get(f"http://{ip}:8080/"), timeout=60)
    assert "Welcome to nginx!" in page


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as r:
        return str(r.read().decode())


# --- streams ----------------------------------------------------------------------------------


def test_exec_cp_port_forward_and_logs(kubectl: Kubectl, tmp_path: Path) -> None:
    pod = poll(lambda: _running(kubectl, "app=web", 2), timeout=60)[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    p = kubectl.run("exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                    check=False)
    assert (p.returncode, p.stdout) == (3, "out\n")
    assert "err" in p.stderr and "command terminated with exit code 3" in p.stderr
    p = kubectl.run("exec", "-i", name, "--", "tr", "a-z", "A-Z", input="piped through\n")
    assert p.stdout == "PIPED THROUGH\n"
    p = kubectl.run("exec", name, "--", "no-such-command", check=False)
    assert p.returncode != 0 and "executable file not found" in p.stderr

    marker = uuid.uuid4().hex
    local = tmp_path / "up.txt"
    local.write_text(f"to the pod {marker}\n")
    kubectl.run("cp", str(local), f"{name}:/tmp/ketch-cp-{marker}")
    back = tmp_path / "back.txt"
    kubectl.run("cp", f"{name}:/tmp/ketch-cp-{marker}", str(back))
    assert back.read_text() == f"to the pod {marker}\n"

    proc = kubectl.popen("port-forward", f"pod/{name}", ":80")
    try:
        assert proc.stdout is not None
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 80", proc.stdout.readline())
        assert m
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/{marker}",
                                    timeout=20) as r:
            assert r.status in (200, 404)
    except urllib.error.HTTPError as e:
        assert e.code == 404
    finally:
        proc.terminate()
        proc.wait(20)

    def logged() -> bool:
        return marker in kubectl.run("logs", name).stdout

    poll(logged, timeout=20)  # the request through the port-forward is in nginx's log
    follow = kubectl.popen("logs", "-f", name, "--tail=0")
    try:
        time.sleep(0.5)  # let the stream open before the request it must show
        second = uuid.uuid4().hex
        try:
            _http(ip, path=f"/{second}")
        except urllib.error.HTTPError:
            pass
        assert follow.stdout is not None
        line = follow.stdout.readline()
        assert second in line
    finally:
        follow.terminate()
        follow.wait(20)


def test_crash_loop_and_previous_logs(kubectl: Kubectl) -> None:
    kubectl.run("run", "crasher", "--image=busybox", "--restart=Always", "--",
                "sh", "-c", "echo attempt-$(date +%s%N); exit 1")

    def looping() -> Obj | None:
        p = _pod(kubectl, "crasher")
        s = (p["status"].get("containerStatuses") or [{}])[0]
        waiting = (s.get("state") or {}).get("waiting") or {}
        return s if s.get("restartCount", 0) >= 1 and \
            waiting.get("reason") == "CrashLoopBackOff" else None

    s = poll(looping, timeout=60)
    assert s["lastState"]["terminated"]["exitCode"] == 1
    assert "CrashLoopBackOff" in kubectl.run("get", "pod", "crasher").stdout
    previous = kubectl.run("logs", "crasher", "--previous").stdout
    assert previous.startswith("attempt-")
    reasons = {e["reason"] for e in _events(kubectl, "crasher")}
    assert "BackOff" in reasons
    kubectl.run("delete", "pod", "crasher", "--grace-period=1")


# --- probes -------------------------------------------------------------------------------------


def test_readiness_gates_endpoints_and_liveness_restarts(kubectl: Kubectl,
                                                         tmp_path: Path) -> None:
    flag = f"/tmp/ketch-ready-{uuid.uuid4().hex}"
    _apply(kubectl, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "gated", "labels": {"app": "gated"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
            "readinessProbe": {"exec": {"command": ["test", "-e", flag]},
                               "periodSeconds": 1}}]}}, tmp_path)
    kubectl.run("create", "service", "clusterip", "gated", "--tcp=8080:80")

    def endpoints() -> Obj | None:
        subsets = kubectl.json("get", "endpoints", "gated").get("subsets") or []
        return subsets[0] if subsets else None

    subset = poll(endpoints, timeout=60)
    assert not subset.get("addresses") and subset.get("notReadyAddresses")
    kubectl.run("exec", "gated", "--", "touch", flag)

    def ready_endpoint() -> bool:
        s = endpoints()
        return bool(s and s.get("addresses"))

    poll(ready_endpoint, timeout=60)

    alive = f"/tmp/ketch-alive-{uuid.uuid4().hex}"
    _apply(kubectl, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "live"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": "busybox",
            "command": ["sh", "-c", f"touch {alive}; exec sleep 3600"],
            "livenessProbe": {"exec": {"command": ["test", "-e", alive]},
                              "periodSeconds": 1, "failureThreshold": 1}}]}}, tmp_path)
    poll(lambda: _state(_pod(kubectl, "live")).get("running"), timeout=60)
    kubectl.run("exec", "live", "--", "rm", alive)

    def restarted() -> bool:
        s = (_pod(kubectl, "live")["status"].get("containerStatuses") or [{}])[0]
        return s.get("restartCount", 0) >= 1 and "running" in (s.get("state") or {})

    poll(restarted, timeout=60)
    messages = [e["message"] for e in _events(kubectl, "live")]
    assert any(m.startswith("Liveness probe failed") for m in messages), messages
    assert any("failed liveness probe, will be restarted" in m for m in messages), messages
    kubectl.run("delete", "pod", "gated", "live", "--grace-period=1")
    kubectl.run("delete", "service", "gated")


# --- workloads and bad input ---------------------------------------------------------------


def test_a_job_runs_to_completion(kubectl: Kubectl) -> None:
    kubectl.run("create", "job", "once", "--image=busybox", "--", "sh", "-c", "echo job done")
    p = kubectl.run("wait", "--for=condition=complete", "job/once", "--timeout=90s",
                    timeout=120)
    assert "condition met" in p.stdout
    assert kubectl.run("logs", "job/once").stdout == "job done\n"
    (pod,) = _pods(kubectl, "job-name=once")
    assert pod["status"]["phase"] == "Succeeded"


def test_graceful_delete_lets_the_container_finish(kubectl: Kubectl, tmp_path: Path) -> None:
    _apply(kubectl, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graceful"},
        "spec": {"terminationGracePeriodSeconds": 20, "containers": [{
            "name": "c", "image": "busybox",
            "command": ["sh", "-c", ("trap 'echo got TERM; exit 7' TERM; "
                                     "while true; do sleep 0.1; done")]}]}}, tmp_path)
    poll(lambda: _state(_pod(kubectl, "graceful")).get("running"), timeout=60)
    watch = kubectl.popen("get", "pod", "graceful", "--watch", "-o", "json")
    try:
        kubectl.run("delete", "pod", "graceful", timeout=60)  # waits until it is gone
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=20)
    seen = [json.loads(doc) for doc in re.split(r"(?m)^(?=\{)", out) if doc.strip()]
    final = [_state(p).get("terminated") for p in seen if _state(p).get("terminated")]
    assert final and final[-1]["exitCode"] == 7  # its own TERM handler, not a SIGKILL


def test_an_unknown_image_fails_to_pull_without_harm(kubectl: Kubectl) -> None:
    kubectl.run("run", "bad", "--image=example.com/no-such-image:1.0")

    def pulling() -> str:
        reason = str((_state(_pod(kubectl, "bad")).get("waiting") or {}).get("reason", ""))
        return reason if reason in ("ErrImagePull", "ImagePullBackOff") else ""

    poll(pulling, timeout=60)
    failed = [e for e in _events(kubectl, "bad") if e["reason"] == "Failed"]
    assert failed and 'Failed to pull image "example.com/no-such-image:1.0"' in \
        failed[0]["message"]
    p = kubectl.run("logs", "bad", check=False)
    assert p.returncode == 1 and 'container "bad" in pod "bad" is waiting to start' in p.stderr
    kubectl.run("delete", "pod", "bad", "--grace-period=1")


# --- nodes --------------------------------------------------------------------------------------


def test_top_and_describe_node(kubectl: Kubectl) -> None:
    def top() -> str:
        p = kubectl.run("top", "nodes", check=False)
        return p.stdout if p.returncode == 0 and "node-1" in p.stdout else ""

    out = poll(top, timeout=60, interval=1.0)
    assert re.search(r"node-1\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%", out), out
    pods = poll(lambda: kubectl.run("top", "pods", "-l", "app=web", check=False).stdout,
                timeout=60, interval=1.0)
    assert "web-" in pods
    described = kubectl.run("describe", "node", "node-1").stdout
    assert "HolderIdentity:  node-1" in described
    assert "KubeletReady" in described and "kubelet is posting ready status" in described
    assert "Starting kubelet." in described
    assert "Node node-1 status is now: NodeHasSufficientMemory" in described
    assert "ketch-process://1" in described and "v1.37.0-ketch" in described


def test_cordon_drain_with_a_budget_and_uncordon(kubectl: Kubectl, tmp_path: Path) -> None:
    poll(lambda: _running(kubectl, "app=web", 2), timeout=60)
    _apply(kubectl, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                     "metadata": {"name": "web"},
                     "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}},
           tmp_path)
    target = _running(kubectl, "app=web", 2)[0]["spec"]["nodeName"]
    p = kubectl.run("drain", target, "--pod-selector=app=web", "--timeout=12s", check=False,
                    timeout=60)
    assert p.returncode == 1
    assert "Cannot evict pod as it would violate the pod's disruption budget." in p.stderr
    node = kubectl.json("get", "node", target)
    assert node["spec"].get("unschedulable") is True  # drain cordoned it first
    kubectl.run("patch", "pdb", "web", "--type=merge", "-p",
                '{"spec":{"maxUnavailable":1}}')
    p = kubectl.run("drain", target, "--pod-selector=app=web", "--timeout=120s",
                    timeout=150)
    assert "evicted" in p.stdout and f"node/{target} drained" in p.stdout
    pods = poll(lambda: _running(kubectl, "app=web", 2), timeout=90)
    assert all(p["spec"]["nodeName"] != target for p in pods)
    assert "uncordoned" in kubectl.run("uncordon", target).stdout
    kubectl.run("delete", "pdb", "web")


# --- the control plane away, a node killed ---------------------------------------------------


def test_apiserver_down_for_30s(ketch: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    pods = poll(lambda: _running(kubectl, "app=web", 2), timeout=60)
    kubectl.run("run", "ender", "--image=busybox", "--restart=Never", "--",
                "sh", "-c", "sleep 10; echo finished")
    poll(lambda: _state(_pod(kubectl, "ender")).get("running"), timeout=60)
    ketch.stop("apiserver-1", signal.SIGKILL)
    try:
        down_since = time.monotonic()
        while time.monotonic() - down_since < 30:
            for pod in pods:  # the pods keep serving
                assert "Welcome to nginx!" in _http(pod["status"]["podIP"])
            time.sleep(2)
    finally:
        ketch.start("apiserver-1", _quiet)
        ketch.wait_ready("apiserver-1", _quiet)

    def caught_up() -> bool:
        return _pod(kubectl, "ender")["status"].get("phase") == "Succeeded"

    poll(caught_up, timeout=60)  # it ended while nobody could hear; its status follows
    assert _state(_pod(kubectl, "ender"))["terminated"]["exitCode"] == 0
    for pod in pods:
        assert _pod(kubectl, pod["metadata"]["name"])["metadata"]["uid"] == \
            pod["metadata"]["uid"]
    nodes = kubectl.json("get", "nodes")["items"]
    for n in nodes:
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"


def test_kill_9_of_an_agent_evicts_and_it_never_leaves_duplicates(
        ketch: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    tolerate = [{"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
                for k in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    _apply(kubectl, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "evict"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "evict"}},
                 "template": {"metadata": {"labels": {"app": "evict"}},
                              "spec": {"tolerations": tolerate,
                                       "terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "nginx"}]}}}},
           tmp_path)
    kubectl.run("rollout", "status", "deploy/evict", "--timeout=120s", timeout=150)
    before = _running(kubectl, "app=evict", 2)
    victim = before[0]["spec"]["nodeName"]
    other = "node-2" if victim == "node-1" else "node-1"
    doomed = [p for p in before if p["spec"]["nodeName"] == victim]
    ketch.stop(victim, signal.SIGKILL)
    for p in doomed:  # the agent is gone, its containers are not
        assert "Welcome to nginx!" in _http(p["status"]["podIP"])

    def not_ready() -> bool:
        node = kubectl.json("get", "node", victim)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        return ready["status"] == "Unknown"

    poll(not_ready, timeout=120, interval=1.0)

    def replaced() -> list[Obj]:
        pods = _running(kubectl, "app=evict", 2)
        return pods if all(p["spec"]["nodeName"] == other for p in pods) else []

    poll(replaced, timeout=120, interval=1.0)
    ketch.start(victim, _quiet)
    ketch.wait_ready(victim, _quiet)

    def old_ones_gone() -> bool:
        names = {p["metadata"]["name"] for p in _pods(kubectl, "app=evict")}
        return not names & {p["metadata"]["name"] for p in doomed}

    poll(old_ones_gone, timeout=120, interval=1.0)
    for p in doomed:  # no second copy: the returning agent stopped the replaced pods
        with pytest.raises(OSError):
            _http(p["status"]["podIP"], timeout=2)
    assert len(_running(kubectl, "app=evict", 2)) == 2


