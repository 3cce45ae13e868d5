"""Integration: the real kubectl 1.37 against a real ``ketch up`` cluster whose apiserver proxies
to a node agent streaming server this test runs (in a thread, with a real handler: real
processes, a real TCP server, log lines the test writes).  The test creates the Node (with
its kubelet endpoint) and the Pod (bound to it, Running) itself.

kubectl exec (output, stdin, exit codes), cp both ways, port-forward, logs (-f, --tail,
--previous, never-ran, deploy/NAME), top pods/nodes, and the refused upgrade kubectl shows
after its SPDY retry.  ``exec -it`` needs a terminal kubectl does not get here: the TTY and
resize path is tested in process (test_node_streaming).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import re
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from certs.layout import admin_paths, issue_node_serving, issue_user, node_serving_paths
from ketch.cluster import Cluster
from node.streaming import StreamingConfig, StreamingServer, serving_context
from tests.kube import Kubectl, poll, ssl_context
from tests.streaming_handler import Container, FakePod, LocalHandler

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _quiet(_: str) -> None:
    pass


class AgentThread:
    """The streaming server on its own event loop in a thread (kubectl calls block this one).
    ``call(fn)`` runs ``fn`` on that loop, where the handler's state lives."""

    def __init__(self, certs: Path, workdir: Path) -> None:
        self.handler = LocalHandler(cwd=str(workdir))
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._tls = serving_context(node_serving_paths(certs, "n1"))
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        config = StreamingConfig("n1", stats_interval=0.2)
        async with StreamingServer(self.handler, config, tls=self._tls) as server:
            self.port = server.port
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(20), "the agent did not start"

    def call(self, fn: Callable[[], T]) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                future.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return future.result(20)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


class Heartbeat:
    """Renews node n1's Lease every few seconds, as its agent would, so the node lifecycle
    controller of ``ketch up`` keeps the node Ready (metrics come only from Ready nodes)."""

    def __init__(self, ketch: Cluster) -> None:
        self._url = f"{ketch.url}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        self._ctx = ssl_context(admin_paths(ketch.store.certs_dir))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def _send(self, method: str, url: str, body: dict[str, Any], kind: str) -> None:
        req = urllib.request.Request(url, method=method, data=json.dumps(body).encode(),
                                     headers={"Content-Type": kind})
        with urllib.request.urlopen(req, context=self._ctx, timeout=10) as r:
            r.read()

    def _now(self) -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def start(self) -> None:
        self._send("POST", self._url, {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                     "renewTime": self._now()}}, "application/json")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(5):
            try:
                self._send("PATCH", f"{self._url}/n1", {"spec": {"renewTime": self._now()}},
                           "application/merge-patch+json")
            except OSError:
                pass  # the next beat tries again

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(20)


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ketch") / "cluster", port=0, nodes=0)  # its own agent
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture(scope="module")
def kubectl(ketch: Cluster) -> Kubectl:
    return Kubectl(ketch.kubeconfig)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pod-root")


@pytest.fixture(scope="module")
def agent(ketch: Cluster, kubectl: Kubectl, workdir: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentThread]:
    certs = ketch.store.certs_dir
    issue_node_serving(certs, "n1", ["127.0.0.1"])
    a = AgentThread(certs, workdir)
    a.start()
    try:
        d = tmp_path_factory.mktemp("objects")
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}}
        (d / "node.json").write_text(json.dumps(node))
        kubectl.run("create", "-f", str(d / "node.json"))
        heartbeat = Heartbeat(ketch)
        heartbeat.start()
        status = {"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": "n1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": a.port}},
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
        kubectl.run("patch", "node", "n1", "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "x", "labels": {"app": "web"}},
               "spec": {"nodeName": "n1", "containers": [
                   {"name": "c", "image": "busybox"}, {"name": "idle", "image": "busybox"}]}}
        (d / "pod.json").write_text(json.dumps(pod))
        poll(lambda: kubectl.run("create", "-f", str(d / "pod.json")))  # default SA first
        kubectl.run("patch", "pod", "x", "--subresource=status", "--type=merge",
                    "-p", '{"status":{"phase":"Running"}}')
        uid = kubectl.json("get", "pod", "x")["metadata"]["uid"]

        def install() -> None:
            c = Container()
            c.add("one\ntwo\nthree\n")
            a.handler.pods[uid] = FakePod("default", "x", {
                "c": c, "idle": Container(waiting="ContainerCreating")})

        a.call(install)
        try:
            yield a
        finally:
            heartbeat.stop()
    finally:
        a.stop()


def _container(agent: AgentThread, name: str) -> Container:
    (pod,) = agent.handler.pods.values()
    return pod.containers[name]


# --- exec and cp --------------------------------------------------------------------------------


def test_exec_output_and_exit_code(kubectl: Kubectl, agent: AgentThread) -> None:
    p = kubectl.run("exec", "x", "-c", "c", "--", "sh", "-c", "echo out; echo err >&2")
    assert p.stdout == "out\n"
    assert "err" in p.stderr
    p = kubectl.run("exec", "x", "-c", "c", "--", "sh", "-c", "echo bye; exit 3", check=False)
    assert (p.returncode, p.stdout) == (3, "bye\n")
    assert "command terminated with exit code 3" in p.stderr


def test_exec_stdin(kubectl: Kubectl, agent: AgentThread) -> None:
    p = kubectl.run("exec", "-i", "x", "-c", "c", "--", "sh", "-c", "tr a-z A-Z",
                    input="piped through\n")
    assert p.stdout == "PIPED THROUGH\n"


def test_exec_default_container_and_failures(kubectl: Kubectl, agent: AgentThread) -> None:
    p = kubectl.run("exec", "x", "--", "echo", "first")
    assert p.stdout == "first\n"
    assert 'Defaulted container "c" out of: c, idle' in p.stderr
    p = kubectl.run("exec", "x", "-c", "idle", "--", "true", check=False)
    assert p.returncode == 1
    assert 'container not found ("idle")' in p.stderr
    p = kubectl.run("exec", "nope", "--", "true", check=False)
    assert p.returncode == 1 and 'pods "nope" not found' in p.stderr


def test_exec_refused_by_rbac_shows_the_spdy_retrys_answer(
        ketch: Cluster, kubectl: Kubectl, agent: AgentThread, tmp_path: Path) -> None:
    from certs.kubeconfig import write_kubeconfig
    from certs.layout import user_paths

    issue_user(ketch.store.certs_dir, "jane")
    paths = user_paths(ketch.store.certs_dir, "jane")
    kc = tmp_path / "jane.kubeconfig"
    write_kubeconfig(kc, server=ketch.url, ca=paths.ca, cert=paths.cert, key=paths.key,
                     user="jane")
    kubectl.run("create", "role", "exec-get", "--verb=get", "--resource=pods,pods/exec")
    kubectl.run("create", "rolebinding", "exec-get", "--role=exec-get", "--user=jane")
    jane = Kubectl(kc)

    def refused() -> subprocess.CompletedProcess[str] | None:
        p = jane.run("exec", "x", "-c", "c", "--", "true", check=False)
        return p if "cannot create resource" in p.stderr else None

    p = poll(refused)
    assert p.returncode == 1
    assert ('error: unable to upgrade connection: pods "x" is forbidden: User "jane" cannot '
            'create resource "pods/exec" in API group "" in the namespace "default"') in p.stderr


def test_cp_both_ways(kubectl: Kubectl, agent: AgentThread, workdir: Path,
                      tmp_path: Path) -> None:
    local = tmp_path / "up.txt"
    local.write_text("to the pod\n")
    target = workdir / "inbox"
    target.mkdir()
    kubectl.run("cp", str(local), f"x:{target}/up.txt", "-c", "c")
    assert (target / "up.txt").read_text() == "to the pod\n"
    (workdir / "down.txt").write_text("from the pod\n" * 1000)
    out = tmp_path / "down.txt"
    kubectl.run("cp", f"x:{workdir}/down.txt", str(out), "-c", "c")
    assert out.read_text() == "from the pod\n" * 1000


# --- port-forward ----------------------------------------------------------------------------


def test_port_forward(kubectl: Kubectl, agent: AgentThread) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data.upper())

    echo = threading.Thread(target=serve, daemon=True)
    echo.start()
    proc = kubectl.popen("port-forward", "pod/x", f":{port}")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        assert m and int(m.group(2)) == port, line
        local = int(m.group(1))
        for word in (b"hello", b"again"):
            with socket.create_connection(("127.0.0.1", local), timeout=20) as s:
                s.sendall(word)
                got = b""
                while len(got) < len(word):
                    chunk = s.recv(100)
                    assert chunk, "the forwarded connection closed early"
                    got += chunk
                assert got == word.upper()
        assert proc.poll() is None  # still forwarding
    finally:
        proc.terminate()
        proc.wait(20)
        server.close()


# --- logs ---------------------------------------------------------------------------------------


def test_logs(kubectl: Kubectl, agent: AgentThread, tmp_path: Path) -> None:
    assert kubectl.run("logs", "x", "-c", "c").stdout == "one\ntwo\nthree\n"
    assert kubectl.run("logs", "x", "-c", "c", "--tail=1").stdout == "three\n"
    assert kubectl.run("logs", "x", "-c", "c", "--since=1h").stdout == "one\ntwo\nthree\n"
    assert kubectl.run("logs", "x", "-c", "c", "--since-time=2999-01-01T00:00:00Z").stdout == ""
    assert kubectl.run("logs", "x", "-c", "c", "--limit-bytes=5").stdout == "one\nt"
    stamped = kubectl.run("logs", "x", "-c", "c", "--timestamps").stdout.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z one", stamped[0])
    p = kubectl.run("logs", "x", "-c", "c", "--previous", check=False)
    assert p.returncode == 1
    assert ('Error from server (BadRequest): previous terminated container "c" in pod "x" '
            "not found") in p.stderr
    p = kubectl.run("logs", "x", "-c", "idle", check=False)
    assert p.returncode == 1
    assert ('Error from server (BadRequest): container "idle" in pod "x" is waiting to start: '
            "ContainerCreating") in p.stderr
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "c",
                                                             "image": "busybox"}]}}}}
    (tmp_path / "deploy.json").write_text(json.dumps(deploy))
    kubectl.run("create", "-f", str(tmp_path / "deploy.json"))
    try:
        assert kubectl.run("logs", "deploy/web", "-c", "c", "--tail=2").stdout == \
            "two\nthree\n"
    finally:
        kubectl.run("delete", "deploy", "web")


def test_logs_previous_and_follow(kubectl: Kubectl, agent: AgentThread) -> None:
    c = _container(agent, "c")

    def restart() -> None:
        c.logs.append([])
        c.add("second life\n")

    agent.call(restart)
    assert kubectl.run("logs", "x", "-c", "c", "-p").stdout == "one\ntwo\nthree\n"
    proc = kubectl.popen("logs", "-f", "x", "-c", "c")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "second life\n"
        agent.call(lambda: c.add("followed\n"))
        assert proc.stdout.readline() == "followed\n"
        agent.call(c.exit)
        assert proc.wait(20) == 0  # the stream ends with the container
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        agent.call(lambda: setattr(c, "running", True))  # a new instance for later tests


# --- top ----------------------------------------------------------------------------------------


def _columns(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}


def test_top_pods_and_nodes(kubectl: Kubectl, agent: AgentThread) -> None:
    def pods() -> dict[str, list[str]] | None:
        p = kubectl.run("top", "pod", check=False)
        return _columns(p.stdout) if p.returncode == 0 else None

    rows = poll(pods)
    assert re.fullmatch(r"\d+m", rows["x"][0]), rows  # about 250m
    assert rows["x"][1] == "20Mi"
    out = kubectl.run("top", "pod", "x", "--containers").stdout
    assert re.search(r"^x\s+c\s+\d+m\s+20Mi", out, re.MULTILINE), out
    nodes = poll(lambda: _columns(kubectl.run("top", "node").stdout))
    cpu, cpu_pct, memory, memory_pct = nodes["n1"]
    assert re.fullmatch(r"\d+m", cpu) and cpu_pct.endswith("%")
    assert memory.endswith("Mi") and memory_pct.endswith("%")


def test_nodes_proxy_stats(kubectl: Kubectl, agent: AgentThread) -> None:
    doc: Any = json.loads(kubectl.run("get", "--raw",
                                      "/api/v1/nodes/n1/proxy/stats/summary").stdout)
    assert doc["node"]["nodeName"] == "n1"
