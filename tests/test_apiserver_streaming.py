"""The apiserver's proxy to the node agents, in process: a real apiserver over an in-memory
store and a real agent streaming server with a real handler, both on loopback mTLS in the
test's event loop.  pods/exec, attach, portforward and log, nodes/proxy and metrics.k8s.io,
with the refusals kubectl shows (RBAC for the WebSocket and the SPDY retry, unscheduled pods,
unknown containers, agents without an endpoint or down)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from certs.layout import (
    admin_paths,
    apiserver_kubelet_client_paths,
    init_cluster_certs,
    issue_node_serving,
    issue_user,
    node_serving_paths,
    user_paths,
)
from certs.tls import client_context
from control.api.streamproto import channels, spdy
from control.apiserver.__main__ import serving_context as api_serving_context
from control.apiserver.app import ServerConfig, build_app
from control.apiserver.kubelet import KubeletClient
from control.apiserver.kubelet.metrics import go_duration
from control.apiserver.state import APIState
from node.streaming import StreamingConfig, StreamingServer, serving_context
from store.memory import MemoryStore
from tests.streaming_handler import Container, FakePod, LocalHandler
from tests.test_node_streaming import SpdyClient, echo_server

TIMEOUT = 15.0
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    init_cluster_certs(d, replicas=["s1"])
    issue_node_serving(d, "n1", ["127.0.0.1"])
    issue_user(d, "jane")
    return d


async def deadline(aw: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(aw, TIMEOUT)


async def until(probe: Callable[[], Awaitable[Any]]) -> Any:
    end = time.monotonic() + TIMEOUT
    while True:
        try:
            value = await probe()
            if value:
                return value
        except AssertionError:
            if time.monotonic() > end:
                raise
        if time.monotonic() > end:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


@dataclass
class Cluster:
    url: str
    handler: LocalHandler
    admin: aiohttp.ClientSession
    certs: Path
    agent_port: int

    async def call(self, method: str, path: str, body: Any = None,
                   session: aiohttp.ClientSession | None = None) -> tuple[int, Any]:
        s = session or self.admin
        async with s.request(method, self.url + path,
                             data=None if body is None else json.dumps(body),
                             headers={"Content-Type": "application/json"}) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text


def _node(name: str, port: int | None, *, ready: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {
        "addresses": [{"type": "Hostname", "address": name},
                      {"type": "InternalIP", "address": "127.0.0.1"}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "capacity": {"cpu": "2", "memory": "4Gi"}, "allocatable": {"cpu": "2", "memory": "4Gi"}}
    if port is not None:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
                                                            "labels": {"zone": "a"}},
            "status": status}


async def _default_account(c: Cluster) -> None:
    """The ``default`` ServiceAccount pods are admitted with (the controller-manager's
    serviceaccount controller makes it; none runs here)."""
    st, body = await c.call("POST", "/api/v1/namespaces/default/serviceaccounts",
                            {"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": "default"}})
    assert st in (201, 409), body


async def _put_node(c: Cluster, node: dict[str, Any]) -> None:
    st, body = await c.call("POST", "/api/v1/nodes", node)
    assert st == 201, body
    body["status"] = node["status"]
    st, body = await c.call("PUT", f"/api/v1/nodes/{node['metadata']['name']}/status", body)
    assert st == 200, body


async def _put_pod(c: Cluster, name: str, node: str, containers: list[str],
                   labels: dict[str, str] | None = None) -> str:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": labels or {"app": name}},
           "spec": {"nodeName": node,
                    "containers": [{"name": n, "image": "busybox"} for n in containers]}}

    async def create() -> Any:
        st, body = await c.call("POST", PODS, pod)
        assert st == 201, body
        return body

    body = await until(create)
    body["status"] = {"phase": "Running"}
    st, body = await c.call("PUT", f"{PODS}/{name}/status", body)
    assert st == 200, body
    return str(body["metadata"]["uid"])


@contextlib.asynccontextmanager
async def _apiserver(certs: Path, kubelet: KubeletClient | None) -> AsyncIterator[str]:
    store = MemoryStore(progress_interval=0.2)
    state = APIState.build(store, kubelet=kubelet)  # type: ignore[arg-type]
    app = build_app(state, ServerConfig(server_address="127.0.0.1:0"))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5, access_log=None,
                           handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=api_serving_context(str(certs)))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await store.close()


@pytest.fixture
async def cluster(certs: Path, tmp_path: Path) -> AsyncIterator[Cluster]:
    handler = LocalHandler(cwd=str(tmp_path))
    kubelet = KubeletClient(client_context(apiserver_kubelet_client_paths(certs)))
    tls = serving_context(node_serving_paths(certs, "n1"))
    admin = aiohttp.TCPConnector(ssl=client_context(admin_paths(certs)))
    async with _apiserver(certs, kubelet) as url, \
            StreamingServer(handler, StreamingConfig("n1", stats_interval=0.05),
                            tls=tls) as agent, aiohttp.ClientSession(connector=admin) as s:
        c = Cluster(url, handler, s, certs, agent.port)
        await _default_account(c)
        await _put_node(c, _node("n1", agent.port))
        uid = await _put_pod(c, "x", "n1", ["c", "idle"])
        handler.pods[uid] = FakePod("default", "x", {"c": Container(),
                                                     "idle": Container(waiting="ErrImagePull")})
        handler.pods[uid].containers["c"].add("one\ntwo\nthree\n")
        yield c


def _exec_query(*argv: str, stdin: bool = False, container: str = "c") -> list[tuple[str, str]]:
    q = [("command", a) for a in argv] + [("container", container), ("stdout", "true"),
                                          ("stderr", "true")]
    return q + ([("stdin", "true")] if stdin else [])


async def _exec(c: Cluster, query: list[tuple[str, str]], stdin: bytes | None = None,
                ) -> tuple[dict[int, bytes], int | None]:
    out: dict[int, bytes] = {}
    async with c.admin.ws_connect(f"{c.url}{PODS}/x/exec", params=query,
                                  protocols=(channels.V5,)) as ws:
        assert ws.protocol == channels.V5
        if stdin is not None:
            await ws.send_bytes(channels.encode(channels.STDIN, stdin))
            await ws.send_bytes(bytes((channels.CLOSE, channels.STDIN)))
        async for msg in ws:
            m = channels.decode(msg.data)
            out[m.channel] = out.get(m.channel, b"") + m.payload
        return out, ws.close_code


# --- exec, attach, port-forward through the apiserver -----------------------------------------


async def test_exec_is_relayed_with_its_exit_code(cluster: Cluster) -> None:
    out, code = await deadline(_exec(cluster, _exec_query("sh", "-c", "echo hi; exit 4")))
    assert out[channels.STDOUT] == b"hi\n"
    assert channels.exit_code_of(out[channels.ERROR]) == 4
    assert code == 1000


async def test_exec_stdin_is_relayed(cluster: Cluster) -> None:
    out, _ = await deadline(_exec(cluster, _exec_query("cat", stdin=True), stdin=b"piped"))
    assert out[channels.STDOUT] == b"piped"
    assert channels.exit_code_of(out[channels.ERROR]) == 0


async def test_pings_are_answered_while_a_stream_is_open(cluster: Cluster) -> None:
    """kubectl pings every 5 s and gives up after 61 s without a pong."""
    async with cluster.admin.ws_connect(f"{cluster.url}{PODS}/x/exec", autoping=False,
                                        params=_exec_query("cat", stdin=True),
                                        protocols=(channels.V5,)) as ws:
        await ws.ping(b"k")
        while (msg := await deadline(ws.receive())).type != aiohttp.WSMsgType.PONG:
            assert msg.type == aiohttp.WSMsgType.BINARY
        assert msg.data == b"k"
        await ws.send_bytes(bytes((channels.CLOSE, channels.STDIN)))
        async for msg in ws:
            assert msg.type == aiohttp.WSMsgType.BINARY
        assert ws.close_code == 1000


async def test_attach_is_relayed(cluster: Cluster) -> None:
    async with cluster.admin.ws_connect(
            f"{cluster.url}{PODS}/x/attach", protocols=(channels.V5,),
            params=[("container", "c"), ("stdin", "true"), ("stdout", "true")]) as ws:
        await ws.send_bytes(channels.encode(channels.STDIN, b"to main\n"))
        await ws.send_bytes(bytes((channels.CLOSE, channels.STDIN)))
        got = b""
        async for msg in ws:
            m = channels.decode(msg.data)
            got += m.payload if m.channel == channels.STDOUT else b""
    assert got == b"to main\n"


async def test_port_forward_is_relayed(cluster: Cluster) -> None:
    async with echo_server() as port, cluster.admin.ws_connect(
            f"{cluster.url}{PODS}/x/portforward",
            protocols=("SPDY/3.1+portforward.k8s.io",)) as ws:
        c = SpdyClient(ws)
        await c.open_pair(port, 0, 1)
        await c.send(spdy.DataFrame(3, b"through the apiserver"))
        await c.until(lambda fs: c.data(3) == b"through the apiserver")
        await c.send(spdy.DataFrame(3, b"", fin=True))
        await c.until(lambda fs: c.fin(1) and c.fin(3))


async def _refusal(c: Cluster, path: str, query: list[tuple[str, str]] | None = None,
                   session: aiohttp.ClientSession | None = None,
                   protocol: str = channels.V5) -> tuple[int, Any, int, Any]:
    """What kubectl sees: the WebSocket GET refused, then the SPDY POST's answer."""
    s = session or c.admin
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        async with s.ws_connect(c.url + path, params=query or [], protocols=(protocol,)):
            pass
    async with s.get(c.url + path, params=query or [],
                     headers={"Connection": "Upgrade", "Upgrade": "websocket",
                              "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key":
                              "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": protocol}
                     ) as r:
        ws_status, ws_body = r.status, await r.json()
    assert e.value.status == ws_status
    async with s.post(c.url + path, params=query or [],
                      headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                               "X-Stream-Protocol-Version": "v5.channel.k8s.io"}) as r:
        return ws_status, ws_body, r.status, await r.json()


@pytest.mark.parametrize(("path", "query", "code", "message"), [
    pytest.param(f"{PODS}/nope/exec", _exec_query("true"), 404, 'pods "nope" not found',
                 id="no-pod"),
    pytest.param(f"{PODS}/x/exec", _exec_query("true", container="zz"), 400,
                 "container zz is not valid for pod x", id="bad-container"),
    pytest.param(f"{PODS}/x/exec", [("command", "true"), ("stdout", "true")], 400,
                 "a container name must be specified for pod x, choose one of: [c idle]",
                 id="which-container"),
    pytest.param(f"{PODS}/x/exec", [("command", "true"), ("container", "c")], 400,
                 "you must specify at least 1 of stdin, stdout, stderr", id="no-streams"),
])
async def test_refusals_are_the_same_for_the_spdy_retry(
        cluster: Cluster, path: str, query: list[tuple[str, str]], code: int,
        message: str) -> None:
    ws_code, ws_body, post_code, post_body = await _refusal(cluster, path, query)
    assert (ws_code, ws_body["message"]) == (code, message)
    assert (post_code, post_body["message"]) == (code, message)


async def test_unscheduled_pod_and_nodes_without_an_agent(cluster: Cluster) -> None:
    await _put_pod(cluster, "floating", "", ["c"])
    q = _exec_query("true")
    _, body, _, post = await _refusal(cluster, f"{PODS}/floating/exec", q)
    assert body["message"] == post["message"] == "pod floating does not have a host assigned"
    await _put_node(cluster, _node("n2", None))
    await _put_pod(cluster, "on-n2", "n2", ["c"])
    code, body, _, post = await _refusal(cluster, f"{PODS}/on-n2/exec", q)
    assert code == 503 and body["reason"] == "ServiceUnavailable"
    assert body["message"] == post["message"] == (
        'node "n2" has no kubelet endpoint (status.daemonEndpoints.kubeletEndpoint.Port)')
    async with echo_server() as free_port:
        pass
    await _put_node(cluster, _node("n3", free_port))
    await _put_pod(cluster, "on-n3", "n3", ["c"])
    code, body, post_code, post = await _refusal(cluster, f"{PODS}/on-n3/exec", q)
    assert code == post_code == 500
    assert body["message"].startswith("error dialing backend: ")
    assert post["message"].startswith("error dialing backend: ")


async def test_spdy_post_that_passes_every_check_is_told_to_upgrade(cluster: Cluster) -> None:
    async with cluster.admin.post(f"{cluster.url}{PODS}/x/exec",
                                  params=_exec_query("true"),
                                  headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade"}) as r:
        assert r.status == 400
        assert (await r.json())["message"].startswith("Upgrade request required")


async def test_websocket_exec_needs_create_as_well_as_get(cluster: Cluster) -> None:
    """jane may get pods/exec but not create it: both requests are refused with the
    create message, which is what kubectl prints from the SPDY retry."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "exec-get", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "exec-get", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "exec-get"},
               "subjects": [{"kind": "User", "name": "jane"}]}
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    assert (await cluster.call("POST", f"{rbac}/roles", role))[0] == 201
    assert (await cluster.call("POST", f"{rbac}/rolebindings", binding))[0] == 201
    jane = aiohttp.TCPConnector(ssl=client_context(user_paths(cluster.certs, "jane")))
    async with aiohttp.ClientSession(connector=jane) as s:
        async def refused() -> tuple[int, Any, int, Any]:
            return await _refusal(cluster, f"{PODS}/x/exec", _exec_query("true"), session=s)

        code, body, post_code, post = await until(refused)  # the RBAC cache catches up
    message = ('pods "x" is forbidden: User "jane" cannot create resource "pods/exec" in API '
               'group "" in the namespace "default"')
    assert (code, body["message"]) == (403, message)
    assert (post_code, post["message"]) == (403, message)


# --- logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "code", "expected"), [
    pytest.param({"container": "c"}, 200, "one\ntwo\nthree\n", id="all"),
    pytest.param({"container": "c", "tailLines": "1"}, 200, "three\n", id="tail"),
    pytest.param({"container": "idle"}, 400,
                 "container \"idle\" in pod \"x\" is waiting to start: image can't be pulled",
                 id="never-ran"),
    pytest.param({"container": "c", "previous": "true"}, 400,
                 'previous terminated container "c" in pod "x" not found', id="no-previous"),
    pytest.param({"container": "zz"}, 400, "container zz is not valid for pod x", id="unknown"),
    pytest.param({}, 400, "a container name must be specified for pod x, choose one of: "
                 "[c idle]", id="which"),
    pytest.param({"container": "c", "tailLines": "-1"}, 422,
                 'PodLogOptions "x" is invalid: tailLines: Invalid value: -1: must be greater '
                 "than or equal to 0", id="invalid"),
])
async def test_logs(cluster: Cluster, query: dict[str, str], code: int, expected: str) -> None:
    async with cluster.admin.get(f"{cluster.url}{PODS}/x/log", params=query) as r:
        text = await r.text()
    assert r.status == code
    assert (text if code == 200 else json.loads(text)["message"]) == expected


async def test_logs_of_an_unscheduled_pod_are_empty(cluster: Cluster) -> None:
    await _put_pod(cluster, "floating", "", ["c"])
    async with cluster.admin.get(f"{cluster.url}{PODS}/floating/log") as r:
        assert (r.status, await r.text()) == (200, "")


async def test_logs_follow_is_streamed(cluster: Cluster) -> None:
    c = next(iter(cluster.handler.pods.values())).containers["c"]
    async with cluster.admin.get(f"{cluster.url}{PODS}/x/log",
                                 params={"container": "c", "follow": "true",
                                         "tailLines": "1"}) as r:
        assert await deadline(r.content.readline()) == b"three\n"
        c.add("four\n")
        assert await deadline(r.content.readline()) == b"four\n"
        c.exit()
        assert await deadline(r.content.read()) == b""


# --- nodes/proxy and metrics ---------------------------------------------------------------------


async def test_node_proxy_reaches_the_agent(cluster: Cluster) -> None:
    st, body = await cluster.call("GET", "/api/v1/nodes/n1/proxy/stats/summary")
    assert st == 200 and body["node"]["nodeName"] == "n1"
    st, text = await cluster.call("GET", "/api/v1/nodes/n1/proxy/healthz")
    assert (st, text) == (200, "ok")
    st, body = await cluster.call("POST", "/api/v1/nodes/n1/proxy/healthz", {})
    assert st == 405


async def test_metrics_api_is_discovered(cluster: Cluster) -> None:
    st, body = await cluster.call("GET", "/apis")
    groups = {g["name"]: g for g in body["groups"]}
    assert groups["metrics.k8s.io"]["preferredVersion"]["version"] == "v1beta1"
    st, body = await cluster.call("GET", "/apis/metrics.k8s.io/v1beta1")
    assert st == 200
    assert {r["name"]: r["kind"] for r in body["resources"]} == {
        "nodes": "NodeMetrics", "pods": "PodMetrics"}


async def test_node_and_pod_metrics(cluster: Cluster) -> None:
    async def pods() -> Any:
        st, body = await cluster.call("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
        assert st == 200, body
        return body["items"]

    (pod,) = await until(pods)
    assert pod["metadata"]["name"] == "x" and pod["metadata"]["labels"] == {"app": "x"}
    assert [c["name"] for c in pod["containers"]] == ["c"]  # "idle" never ran
    assert pod["containers"][0]["usage"]["memory"] == "20Mi"
    assert pod["containers"][0]["usage"]["cpu"].endswith(("m", "n", "u"))
    st, one = await cluster.call("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/x")
    assert st == 200 and one["kind"] == "PodMetrics"
    st, body = await cluster.call(
        "GET", "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dnope")
    assert (st, body["items"]) == (200, [])
    st, body = await cluster.call("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert st == 200 and [n["metadata"]["name"] for n in body["items"]] == ["n1"]
    assert body["items"][0]["metadata"]["labels"] == {"zone": "a"}
    st, body = await cluster.call("GET", "/apis/metrics.k8s.io/v1beta1/nodes/n1")
    assert st == 200 and body["usage"]["memory"]
    await _put_pod(cluster, "quiet", "n1", ["c"])
    st, body = await cluster.call("GET",
                                  "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/quiet")
    assert (st, body["message"]) == (404, 'podmetrics.metrics.k8s.io "default/quiet" not found')
    st, body = await cluster.call("GET", "/apis/metrics.k8s.io/v1beta1/watch/pods")
    assert st in (404, 405)


async def test_viewers_may_read_pod_metrics(cluster: Cluster) -> None:
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "jane-view", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "view"},
               "subjects": [{"kind": "User", "name": "jane"}]}
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    assert (await cluster.call("POST", f"{rbac}/rolebindings", binding))[0] == 201
    jane = aiohttp.TCPConnector(ssl=client_context(user_paths(cluster.certs, "jane")))
    async with aiohttp.ClientSession(connector=jane) as s:
        async def allowed() -> bool:
            st, _ = await cluster.call(
                "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", session=s)
            return st == 200

        await until(allowed)
        st, _ = await cluster.call("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods",
                                   session=s)
        assert st == 403


async def test_without_a_kubelet_client_streams_are_unavailable(certs: Path) -> None:
    admin = aiohttp.TCPConnector(ssl=client_context(admin_paths(certs)))
    async with _apiserver(certs, None) as url, aiohttp.ClientSession(connector=admin) as s:
        c = Cluster(url, LocalHandler(), s, certs, 0)
        await _default_account(c)
        await _put_node(c, _node("n1", 1))
        await _put_pod(c, "x", "n1", ["c"])
        st, body = await c.call("GET", f"{PODS}/x/log")
        assert st == 503 and "kubelet client certificate" in body["message"]
        st, body = await c.call("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
        assert st == 503


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "200ms"), (10.0, "10s"), (10.5, "10.5s"), (90.25, "1m30.25s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
