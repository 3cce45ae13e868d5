"""node/streaming in process: the agent's streaming server over real mTLS with a real handler
(real processes, a real TCP echo server), driven by aiohttp's WebSocket client the way kubectl
drives it through the apiserver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from certs.layout import (
    admin_paths,
    apiserver_kubelet_client_paths,
    init_cluster_certs,
    issue_node_serving,
    node_serving_paths,
)
from certs.tls import client_context
from control.api.streamproto import channels, spdy
from control.api.streamproto.summary import Usage
from node.streaming import PodRef, StreamingConfig, StreamingServer, serving_context
from tests.streaming_handler import Container, FakePod, LocalHandler

TIMEOUT = 15.0
UID = "uid-x"
POD = f"/default/x/{UID}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    init_cluster_certs(d, replicas=["s1"])
    issue_node_serving(d, "n1", ["127.0.0.1"])
    return d


@dataclass
class Agent:
    url: str
    handler: LocalHandler
    session: aiohttp.ClientSession
    certs: Path


@pytest.fixture
async def agent(certs: Path, tmp_path: Path) -> AsyncIterator[Agent]:
    handler = LocalHandler(cwd=str(tmp_path))
    handler.pods[UID] = FakePod("default", "x", {"c": Container()})
    handler.pods[UID].containers["c"].add("one\ntwo\nthree\n")
    handler.pods[UID].containers["idle"] = Container(waiting="ContainerCreating")
    config = StreamingConfig("n1", stats_interval=0.05)
    async with StreamingServer(handler, config, tls=serving_context(node_serving_paths(
            certs, "n1"))) as server:
        tls = client_context(apiserver_kubelet_client_paths(certs))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
            yield Agent(f"https://127.0.0.1:{server.port}", handler, s, certs)


async def deadline(aw: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(aw, TIMEOUT)


async def eventually(probe: Callable[[], Any]) -> None:
    end = time.monotonic() + TIMEOUT
    while not probe():
        if time.monotonic() > end:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


@dataclass
class Session:
    """What the client saw: bytes per channel, the status, how the server closed."""

    out: dict[int, bytes] = field(default_factory=dict)
    messages: list[bytes] = field(default_factory=list)
    close_code: int | None = None

    @property
    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.out[channels.ERROR]))


async def remote(agent: Agent, path: str, query: list[tuple[str, str]], *,
                 protocol: str = channels.V5,
                 script: Callable[[aiohttp.ClientWebSocketResponse, Session],
                                  Awaitable[None]] | None = None) -> Session:
    """Open an exec/attach WebSocket, run ``script`` beside the reader, read to the close."""
    seen = Session()
    async with agent.session.ws_connect(f"{agent.url}{path}", params=query,
                                        protocols=(protocol,)) as ws:
        assert ws.protocol == protocol

        async def read() -> None:
            async for msg in ws:
                assert msg.type == aiohttp.WSMsgType.BINARY
                seen.messages.append(msg.data)
                m = channels.decode(msg.data)
                seen.out[m.channel] = seen.out.get(m.channel, b"") + m.payload

        reader = asyncio.create_task(read())
        if script is not None:
            await deadline(script(ws, seen))
        await deadline(reader)
        seen.close_code = ws.close_code
    return seen


def cmd(*argv: str, stdin: bool = False, tty: bool = False) -> list[tuple[str, str]]:
    q = [("command", a) for a in argv] + [("stdout", "1")]
    q += [("stdin", "1")] if stdin else []
    q += [("tty", "1")] if tty else [("stderr", "1")]
    return q


# --- exec --------------------------------------------------------------------------------------


async def test_exec_output_and_exit_code_on_the_status_channel(agent: Agent) -> None:
    s = await remote(agent, f"/exec{POD}/c", cmd("sh", "-c", "echo out; echo err >&2; exit 3"))
    assert s.out[channels.STDOUT] == b"out\n"
    assert s.out[channels.STDERR] == b"err\n"
    assert channels.exit_code_of(s.out[channels.ERROR]) == 3
    assert s.status["reason"] == "NonZeroExitCode"
    assert s.messages[0] == b"\x01"  # the empty "connected" message on stdout comes first
    assert s.messages[-1][0] == channels.ERROR  # the status is the last message
    assert s.close_code == 1000


async def test_exec_success_status(agent: Agent) -> None:
    s = await remote(agent, f"/exec{POD}/c", cmd("true"))
    assert s.status == {"metadata": {}, "status": "Success"}
    assert s.close_code == 1000


async def test_exec_stdin_until_the_v5_close_signal(agent: Agent) -> None:
    async def script(ws: aiohttp.ClientWebSocketResponse, _: Session) -> None:
        await ws.send_bytes(channels.encode(channels.STDIN, b"hello "))
        await ws.send_bytes(channels.encode(channels.STDIN, b"world"))
        await ws.send_bytes(bytes((channels.CLOSE, channels.STDIN)))

    s = await remote(agent, f"/exec{POD}/c", cmd("sh", "-c", "cat; echo; echo done",
                                                 stdin=True), script=script)
    assert s.out[channels.STDOUT] == b"hello world\ndone\n"
    assert channels.exit_code_of(s.out[channels.ERROR]) == 0


async def test_exec_over_v4(agent: Agent) -> None:
    s = await remote(agent, f"/exec{POD}/c", cmd("sh", "-c", "echo v4; exit 7"),
                     protocol=channels.V4)
    assert s.out[channels.STDOUT] == b"v4\n"
    assert channels.exit_code_of(s.out[channels.ERROR]) == 7


async def test_exec_tty_resize_reaches_the_terminal(agent: Agent) -> None:
    """kubectl exec -it: sizes on channel 4, keys on channel 0 with \\r, the exit code."""

    async def script(ws: aiohttp.ClientWebSocketResponse, seen: Session) -> None:
        await ws.send_bytes(channels.encode_resize(channels.TerminalSize(100, 40)))
        await ws.send_bytes(channels.encode_resize(channels.TerminalSize(120, 50)))
        await eventually(lambda: channels.TerminalSize(120, 50) in agent.handler.resizes)
        await ws.send_bytes(channels.encode(channels.STDIN, b"stty size\r"))
        await eventually(lambda: b"50 120" in seen.out.get(channels.STDOUT, b""))
        await ws.send_bytes(channels.encode(channels.STDIN, b"exit 5\r"))

    s = await remote(agent, f"/exec{POD}/c", cmd("sh", stdin=True, tty=True), script=script)
    assert b"50 120\r\n" in s.out[channels.STDOUT]
    assert channels.STDERR not in s.out  # a terminal merges stderr into stdout
    assert channels.exit_code_of(s.out[channels.ERROR]) == 5
    assert agent.handler.resizes[:2] == [channels.TerminalSize(100, 40),
                                         channels.TerminalSize(120, 50)]


async def test_exec_failures_are_statuses(agent: Agent) -> None:
    s = await remote(agent, f"/exec{POD}/idle", cmd("true"))
    assert s.status["status"] == "Failure"
    assert s.status["message"] == 'container not found ("idle")'
    assert channels.exit_code_of(s.out[channels.ERROR]) is None
    s = await remote(agent, "/exec/default/x/other-uid/c", cmd("true"))
    assert s.status["reason"] == "NotFound"
    s = await remote(agent, f"/exec{POD}/c", cmd("/no/such/binary"))
    assert channels.exit_code_of(s.out[channels.ERROR]) == 127


async def test_client_leaving_kills_the_process(agent: Agent) -> None:
    async with agent.session.ws_connect(f"{agent.url}/exec{POD}/c",
                                        params=cmd("sleep", "60"),
                                        protocols=(channels.V5,)) as ws:
        await deadline(ws.receive())  # connected
        await eventually(lambda: agent.handler.processes == 1)
    await eventually(lambda: agent.handler.processes == 0)


async def test_attach_streams_the_main_process(agent: Agent) -> None:
    async def script(ws: aiohttp.ClientWebSocketResponse, seen: Session) -> None:
        await ws.send_bytes(channels.encode(channels.STDIN, b"attached\n"))
        await eventually(lambda: seen.out.get(channels.STDOUT) == b"attached\n")
        await ws.send_bytes(bytes((channels.CLOSE, channels.STDIN)))

    s = await remote(agent, f"/attach{POD}/c", [("stdin", "1"), ("stdout", "1")],
                     script=script)
    assert s.status == {"metadata": {}, "status": "Success"}


@pytest.mark.parametrize(("path", "query", "protocol", "why"), [
    pytest.param(f"/exec{POD}/c", [("command", "true")], channels.V5, "at least 1 of",
                 id="no-streams"),
    pytest.param(f"/exec{POD}/c", [("stdout", "1")], channels.V5, "at least one command",
                 id="no-command"),
    pytest.param(f"/exec{POD}/c", cmd("true"), "channel.k8s.io", "Upgrade request required",
                 id="old-protocol"),
    pytest.param(f"/portForward{POD}", [], channels.V5, "Upgrade request required",
                 id="port-forward-needs-spdy"),
])
async def test_refused_before_the_upgrade(agent: Agent, path: str, query: list[tuple[str, str]],
                                          protocol: str, why: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        async with agent.session.ws_connect(f"{agent.url}{path}", params=query,
                                            protocols=(protocol,)):
            pass
    assert e.value.status == 400
    async with agent.session.get(f"{agent.url}{path}", params=query) as r:
        assert r.status == 400
        assert why in (await r.json())["message"]


# --- authorization -------------------------------------------------------------------------------


async def test_only_the_apiservers_kubelet_client_is_let_in(agent: Agent) -> None:
    admin = client_context(admin_paths(agent.certs))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=admin)) as s, \
            s.get(f"{agent.url}/exec{POD}/c", params=cmd("true")) as r:
        assert r.status == 403
        body = await r.json()
        assert body["reason"] == "Forbidden"
        assert body["message"] == ("Forbidden (user=admin, verb=get, resource=nodes, "
                                   "subresource=proxy)")
    anonymous = ssl.create_default_context(cafile=str(agent.certs / "ca.crt"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=anonymous)) as s:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            async with s.get(f"{agent.url}/healthz") as r:
                await r.read()
    async with agent.session.get(f"{agent.url}/healthz") as r:
        assert (r.status, await r.text()) == (200, "ok")


# --- port-forward ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


class SpdyClient:
    """kubectl's side of a port-forward session, field by field as it writes them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.enc, self.dec = ws, spdy.FrameEncoder(), spdy.FrameDecoder()
        self.frames: list[spdy.Frame] = []

    async def send(self, frame: spdy.Frame) -> None:
        wire = self.enc.encode(frame)
        for i in range(0, len(wire), 4):  # as kubectl: many small messages
            await self.ws.send_bytes(wire[i:i + 4])

    async def until(self, want: Callable[[list[spdy.Frame]], bool]) -> list[spdy.Frame]:
        while not want(self.frames):
            msg = await deadline(self.ws.receive())
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            self.frames += self.dec.feed(msg.data)
        return self.frames

    def data(self, sid: int) -> bytes:
        return b"".join(f.data for f in self.frames
                        if isinstance(f, spdy.DataFrame) and f.stream_id == sid)

    def fin(self, sid: int) -> bool:
        return any(isinstance(f, spdy.DataFrame) and f.stream_id == sid and f.fin
                   for f in self.frames)

    async def open_pair(self, port: int, request_id: int, error_id: int) -> None:
        headers = {"port": str(port), "requestid": str(request_id)}
        await self.send(spdy.SynStream(error_id, {"streamtype": "error", **headers}))
        await self.send(spdy.DataFrame(error_id, b"", fin=True))
        await self.send(spdy.SynStream(error_id + 2, {"streamtype": "data", **headers}))


async def test_port_forward_to_a_tcp_server(agent: Agent) -> None:
    async with echo_server() as port, agent.session.ws_connect(
            f"{agent.url}/portForward{POD}", protocols=("SPDY/3.1+portforward.k8s.io",)) as ws:
        c = SpdyClient(ws)
        await c.open_pair(port, 0, 1)
        await c.until(lambda fs: {f.stream_id for f in fs if isinstance(f, spdy.SynReply)}
                      == {1, 3})
        await c.send(spdy.Ping(1))
        await c.send(spdy.DataFrame(3, b"ping"))
        await c.until(lambda fs: c.data(3) == b"ping" and spdy.Ping(1) in fs)
        # a second connection in the same session, by request id
        await c.open_pair(port, 1, 5)
        await c.send(spdy.DataFrame(7, b"second"))
        await c.until(lambda fs: c.data(7) == b"second")
        # the local side closes: FIN; the pod's EOF then ends both streams of the pair
        await c.send(spdy.DataFrame(3, b"", fin=True))
        await c.until(lambda fs: c.fin(3) and c.fin(1))
        assert c.data(1) == b""  # nothing on the error stream
        await c.send(spdy.RstStream(3, spdy.RST_CANCEL))
        await c.send(spdy.RstStream(7, spdy.RST_CANCEL))  # reset without FIN: still ends
        await c.until(lambda fs: c.fin(5))


async def test_port_forward_refused_port_is_reported_on_the_error_stream(agent: Agent) -> None:
    async with echo_server() as port:
        pass  # now nothing listens there
    async with agent.session.ws_connect(f"{agent.url}/portForward{POD}",
                                        protocols=("SPDY/3.1+portforward.k8s.io",)) as ws:
        c = SpdyClient(ws)
        await c.open_pair(port, 0, 1)
        await c.until(lambda fs: c.fin(1) and c.fin(3))
        message = c.data(1).decode()
        assert message.startswith(f"error forwarding port {port} to pod x, uid {UID}: ")


async def test_port_forward_garbage_ends_the_session(agent: Agent) -> None:
    async with agent.session.ws_connect(f"{agent.url}/portForward{POD}",
                                        protocols=("SPDY/3.1+portforward.k8s.io",)) as ws:
        await ws.send_bytes(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # SPDY/2
        c = SpdyClient(ws)
        await c.until(lambda fs: any(isinstance(f, spdy.GoAway) for f in fs))
        assert (await deadline(ws.receive())).type in (aiohttp.WSMsgType.CLOSE,
                                                       aiohttp.WSMsgType.CLOSED)


# --- logs --------------------------------------------------------------------------------------


async def logs(agent: Agent, container: str = "c", **query: str) -> tuple[int, str]:
    async with agent.session.get(f"{agent.url}/containerLogs/default/x/{container}",
                                 params={"podUID": UID, **query}) as r:
        return r.status, await r.text()


@pytest.mark.parametrize(("query", "expected"), [
    pytest.param({}, "one\ntwo\nthree\n", id="all"),
    pytest.param({"tailLines": "2"}, "two\nthree\n", id="tail"),
    pytest.param({"tailLines": "0"}, "", id="tail-0"),
    pytest.param({"limitBytes": "6"}, "one\ntw", id="limit"),
    pytest.param({"sinceSeconds": "3600"}, "one\ntwo\nthree\n", id="since"),
    pytest.param({"sinceTime": "2999-01-01T00:00:00Z"}, "", id="since-future"),
])
async def test_logs(agent: Agent, query: dict[str, str], expected: str) -> None:
    assert await logs(agent, **query) == (200, expected)


async def test_logs_timestamps_are_kubelets(agent: Agent) -> None:
    status, text = await logs(agent, timestamps="1", limitBytes="200")
    lines = text.splitlines()
    assert status == 200 and len(lines) == 3
    stamp, _, rest = lines[0].partition(" ")
    assert rest == "one"
    assert len(stamp) == 30 and stamp.endswith("Z") and stamp[19] == "."  # 9 digits


@pytest.mark.parametrize(("container", "query", "code", "message"), [
    pytest.param("idle", {}, 400,
                 'container "idle" in pod "x" is waiting to start: ContainerCreating',
                 id="never-ran"),
    pytest.param("c", {"previous": "1"}, 400,
                 'previous terminated container "c" in pod "x" not found', id="no-previous"),
    pytest.param("c", {"tailLines": "-1"}, 400,
                 "tailLines: Invalid value: -1: must be greater than or equal to 0", id="bad"),
])
async def test_logs_errors_are_kubelets(agent: Agent, container: str, query: dict[str, str],
                                        code: int, message: str) -> None:
    status, text = await logs(agent, container, **query)
    assert (status, json.loads(text)["message"]) == (code, message)


async def test_logs_previous_and_follow(agent: Agent) -> None:
    c = agent.handler.pods[UID].containers["c"]
    c.logs.append([])
    c.add("restarted\n")
    assert await logs(agent, previous="1") == (200, "one\ntwo\nthree\n")
    async with agent.session.get(f"{agent.url}/containerLogs/default/x/c",
                                 params={"podUID": UID, "follow": "1"}) as r:
        assert await deadline(r.content.readline()) == b"restarted\n"
        c.add("later\n")
        assert await deadline(r.content.readline()) == b"later\n"
        c.exit()
        assert await deadline(r.content.read()) == b""  # the stream ends with the container


# --- stats -------------------------------------------------------------------------------------


async def test_stats_summary_has_rates_after_two_samples(agent: Agent) -> None:
    doc: dict[str, Any] = {}

    async def fetch() -> bool:
        nonlocal doc
        async with agent.session.get(f"{agent.url}/stats/summary") as r:
            assert r.status == 200
            doc = await r.json()
        return "usageNanoCores" in doc["node"]["cpu"] and bool(doc["pods"])

    end = time.monotonic() + TIMEOUT
    while not await fetch():
        assert time.monotonic() < end, doc
        await asyncio.sleep(0.02)
    assert doc["node"]["nodeName"] == "n1"
    (pod,) = doc["pods"]
    assert pod["podRef"] == {"name": "x", "namespace": "default", "uid": UID}
    (container,) = pod["containers"]  # "idle" never ran: no stats
    assert container["name"] == "c"
    assert container["memory"]["workingSetBytes"] == 20 * 1024 * 1024
    assert doc["windowSeconds"] > 0


def test_pod_ref_is_a_value() -> None:
    assert PodRef("a", "b") == PodRef("a", "b", "")


# --- /proc readings ------------------------------------------------------------------------------


def test_proc_readings_from_a_fake_proc(tmp_path: Path) -> None:
    from node.streaming.procstats import _PAGE, _TICK_NS, host_usage, process_usage

    (tmp_path / "stat").write_text("cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 1 2 3 4\n")
    (tmp_path / "meminfo").write_text("MemTotal:  1000 kB\nMemFree: 100 kB\n"
                                      "MemAvailable:  600 kB\n")
    assert host_usage(tmp_path) == Usage(161 * _TICK_NS, 400 * 1024)
    for pid, comm in ((7, "sh"), (8, "a b) c")):
        (tmp_path / str(pid)).mkdir()
        fields = ["S"] + ["0"] * 10 + ["30", "12"] + ["0"] * 30
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields))
        (tmp_path / str(pid) / "statm").write_text("900 25 3 1 0 50 0\n")
    assert process_usage([7, 8, 99], tmp_path) == Usage(84 * _TICK_NS, 50 * _PAGE)


def test_proc_readings_of_this_machine() -> None:
    import os

    from node.streaming.procstats import host_usage, process_usage

    host = host_usage()
    assert host.cpu_core_nanoseconds > 0 and host.memory_working_set_bytes > 0
    me = process_usage([os.getpid()])
    assert 0 < me.memory_working_set_bytes < host.memory_working_set_bytes
