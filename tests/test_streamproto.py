"""control/api/streamproto: the exec/attach channel protocol, SPDY/3.1 framing with compressed
headers, the streaming query options and the agent's stats summary, table-driven."""

from __future__ import annotations

import datetime as dt
import json
import struct
import zlib
from typing import Any

import pytest

from control.api.streamproto import channels, spdy
from control.api.streamproto.options import LogOptions, OptionError, RemoteCommandOptions
from control.api.streamproto.summary import (
    ContainerStats,
    PodStats,
    Summary,
    SummaryError,
    Usage,
    from_json,
    to_json,
)

# --- channels --------------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "payload", "wire"), [
    pytest.param(channels.STDIN, b"ls\n", b"\x00ls\n", id="stdin"),
    pytest.param(channels.STDOUT, b"", b"\x01", id="empty-stdout"),
    pytest.param(channels.STDERR, b"oops", b"\x02oops", id="stderr"),
    pytest.param(channels.ERROR, b"{}", b"\x03{}", id="error"),
    pytest.param(channels.CLOSE, b"\x00", b"\xff\x00", id="close-stdin"),
])
def test_channel_messages(channel: int, payload: bytes, wire: bytes) -> None:
    assert channels.encode(channel, payload) == wire
    assert channels.decode(wire) == channels.Message(channel, payload)


def test_channel_message_refusals() -> None:
    with pytest.raises(channels.ChannelError):
        channels.decode(b"")
    with pytest.raises(channels.ChannelError):
        channels.encode(256, b"")


@pytest.mark.parametrize(("pieces", "sizes"), [
    pytest.param([b'{"Width":100,"Height":40}\n'], [(100, 40)], id="kubectl"),
    pytest.param([b'{"Width":100,', b'"Height":40}'], [(100, 40)], id="split"),
    pytest.param([b'{"Width":1,"Height":2}{"Width":3,"Height":4}\n'], [(1, 2), (3, 4)],
                 id="joined"),
    pytest.param([b'  {"Height":9}  '], [(0, 9)], id="width-missing-is-zero"),
    pytest.param([b"\n", b""], [], id="blank"),
])
def test_resize_decoder(pieces: list[bytes], sizes: list[tuple[int, int]]) -> None:
    d = channels.ResizeDecoder()
    got = [s for p in pieces for s in d.feed(p)]
    assert got == [channels.TerminalSize(w, h) for w, h in sizes]


@pytest.mark.parametrize("payload", [
    pytest.param(b'[1,2]', id="not-object"),
    pytest.param(b'{"Width":-1,"Height":2}', id="negative"),
    pytest.param(b'{"Width":"80","Height":2}', id="string"),
    pytest.param(b"\xff", id="not-utf8"),
    pytest.param(b"x" * 5000, id="garbage"),
])
def test_resize_decoder_refusals(payload: bytes) -> None:
    with pytest.raises(channels.ChannelError):
        list(channels.ResizeDecoder().feed(payload))


def test_encode_resize_is_what_kubectl_sends() -> None:
    wire = channels.encode_resize(channels.TerminalSize(120, 50))
    assert wire == b'\x04{"Width":120,"Height":50}'
    assert list(channels.ResizeDecoder().feed(wire[1:])) == [channels.TerminalSize(120, 50)]


@pytest.mark.parametrize(("status", "code"), [
    pytest.param(channels.success_status(), 0, id="success"),
    pytest.param(channels.exit_status(0, ["true"]), 0, id="exit-0"),
    pytest.param(channels.exit_status(3, ["sh", "-c", "exit 3"]), 3, id="exit-3"),
    pytest.param(channels.failure_status("failed to start"), None, id="failure"),
])
def test_status_channel(status: bytes, code: int | None) -> None:
    assert channels.exit_code_of(status) == code


def test_nonzero_status_is_kubelets() -> None:
    assert json.loads(channels.exit_status(3, ["sh", "-c", "exit 3"])) == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c exit 3], exit code 3",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    assert json.loads(channels.success_status()) == {"metadata": {}, "status": "Success"}


# --- SPDY ------------------------------------------------------------------------------------

FRAMES: list[Any] = [
    pytest.param(spdy.DataFrame(1, b"hello"), id="data"),
    pytest.param(spdy.DataFrame(3, b"", fin=True), id="data-fin"),
    pytest.param(spdy.SynStream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}),
                 id="syn-stream"),
    pytest.param(spdy.SynStream(5, {"a": "b"}, associated_id=1, priority=7, fin=True,
                                unidirectional=True), id="syn-stream-flags"),
    pytest.param(spdy.SynReply(1, {}), id="syn-reply-empty"),
    pytest.param(spdy.SynReply(3, {"x": "y"}, fin=True), id="syn-reply"),
    pytest.param(spdy.Headers(3, {"k": "v"}), id="headers"),
    pytest.param(spdy.RstStream(3, spdy.RST_CANCEL), id="rst"),
    pytest.param(spdy.Settings(((0, 4, 100), (1, 7, 65536))), id="settings"),
    pytest.param(spdy.Ping(7), id="ping"),
    pytest.param(spdy.GoAway(9, 0), id="goaway"),
    pytest.param(spdy.WindowUpdate(1, 4096), id="window-update"),
    pytest.param(spdy.UnknownControl(10, 0, b"abc"), id="unknown"),
]


@pytest.mark.parametrize("frame", FRAMES)
def test_spdy_round_trip(frame: spdy.Frame) -> None:
    wire = spdy.FrameEncoder().encode(frame)
    assert spdy.FrameDecoder().feed(wire) == [frame]


def test_spdy_dictionary_is_the_drafts() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"utf-,*,enq=0.")


def _reference_syn_stream(compressor: Any, sid: int, headers: dict[str, str]) -> bytes:
    """A SYN_STREAM packed by hand, as spdystream writes it (zlib level 9 with the
    dictionary, a sync flush per block)."""
    raw = struct.pack(">I", len(headers)) + b"".join(
        struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        for k, v in headers.items())
    block = compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIBB", sid, 0, 0, 0) + block
    return struct.pack(">HHI", 0x8003, 1, len(payload)) + payload


def test_spdy_headers_share_one_context_per_direction() -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    error = {"streamtype": "error", "port": "8080", "requestid": "0"}
    data = {"streamtype": "data", "port": "8080", "requestid": "0"}
    first, second = _reference_syn_stream(z, 1, error), _reference_syn_stream(z, 3, data)
    decoder = spdy.FrameDecoder()
    assert decoder.feed(first + second) == [spdy.SynStream(1, error), spdy.SynStream(3, data)]
    # the second block depends on the first: a fresh context cannot read it
    with pytest.raises(spdy.SpdyError):
        spdy.FrameDecoder().feed(second)


def test_spdy_stream_split_as_kubectl_writes_it() -> None:
    """kubectl writes each field as its own WebSocket message: 2, 2, 4, 4, 4, 1, 1, 52..."""
    enc = spdy.FrameEncoder()
    frames = [spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
              spdy.DataFrame(1, b"", fin=True), spdy.Ping(1), spdy.DataFrame(3, b"x" * 300)]
    wire = b"".join(enc.encode(f) for f in frames)
    decoder, got, pos = spdy.FrameDecoder(), [], 0
    for size in (2, 2, 4, 4, 4, 1, 1, 52, 4, 4, 0, 1, 1000):
        got += decoder.feed(wire[pos:pos + size])
        pos += size
    got += decoder.feed(wire[pos:])
    assert got == frames


@pytest.mark.parametrize("wire", [
    pytest.param(struct.pack(">HHI", 0x8002, 6, 4) + b"\0\0\0\1", id="spdy-2"),
    pytest.param(struct.pack(">HHI", 0x8003, 1, 12) + b"\0" * 10 + b"zz", id="bad-zlib"),
    pytest.param(struct.pack(">HHI", 0x8003, 3, 4) + b"\0\0\0\1", id="short-rst"),
    pytest.param(struct.pack(">HHI", 0x8003, 6, 0), id="short-ping"),
])
def test_spdy_refusals(wire: bytes) -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.FrameDecoder().feed(wire)


def test_spdy_header_bomb_is_refused() -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    big = "v" * (spdy.MAX_HEADER_BLOCK + 10)
    with pytest.raises(spdy.SpdyError, match="larger"):
        spdy.FrameDecoder().feed(_reference_syn_stream(z, 1, {"k": big}))


def test_spdy_partial_frame_waits() -> None:
    wire = spdy.FrameEncoder().encode(spdy.DataFrame(1, b"abcdef"))
    d = spdy.FrameDecoder()
    assert d.feed(wire[:9]) == []
    assert d.feed(wire[9:]) == [spdy.DataFrame(1, b"abcdef")]


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    pytest.param({}, LogOptions(), id="none"),
    pytest.param({"follow": ["true"], "tailLines": ["2"], "timestamps": ["1"]},
                 LogOptions(follow=True, tail_lines=2, timestamps=True), id="kubectl-f"),
    pytest.param({"previous": ["false"], "limitBytes": ["100"], "sinceSeconds": ["300"]},
                 LogOptions(limit_bytes=100, since_seconds=300), id="limits"),
    pytest.param({"sinceTime": ["2026-01-01T00:00:00Z"]},
                 LogOptions(since_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), id="since-time"),
])
def test_log_options(query: dict[str, list[str]], expected: LogOptions) -> None:
    opts = LogOptions.from_query(query)
    assert opts == expected
    again = LogOptions.from_query({k: [v] for k, v in opts.to_query()})
    assert again == opts


@pytest.mark.parametrize(("query", "field", "why"), [
    pytest.param({"tailLines": ["-1"]}, "tailLines", "greater than or equal to 0", id="tail"),
    pytest.param({"limitBytes": ["0"]}, "limitBytes", "greater than 0", id="limit"),
    pytest.param({"sinceSeconds": ["0"]}, "sinceSeconds", "greater than 0", id="since"),
    pytest.param({"sinceSeconds": ["1"], "sinceTime": ["2026-01-01T00:00:00Z"]}, "",
                 "at most one", id="both"),
    pytest.param({"tailLines": ["x"]}, "tailLines", "integer", id="not-int"),
    pytest.param({"sinceTime": ["yesterday"]}, "sinceTime", "RFC 3339", id="bad-time"),
])
def test_log_option_refusals(query: dict[str, list[str]], field: str, why: str) -> None:
    with pytest.raises(OptionError, match=why) as e:
        LogOptions.from_query(query)
    assert e.value.field == field


@pytest.mark.parametrize(("query", "exec_", "expected"), [
    pytest.param({"command": ["sh", "-c", "echo hi"], "stdout": ["true"], "stderr": ["true"]},
                 True, RemoteCommandOptions(("sh", "-c", "echo hi"), False, True, True, False),
                 id="exec"),
    pytest.param({"command": ["sh"], "stdin": ["true"], "stdout": ["true"],
                  "stderr": ["true"], "tty": ["true"]},
                 True, RemoteCommandOptions(("sh",), True, True, False, True),
                 id="tty-drops-stderr"),
    pytest.param({"command": ["ignored"], "stdout": ["1"]}, False,
                 RemoteCommandOptions((), False, True, False, False), id="attach"),
])
def test_remote_command_options(query: dict[str, list[str]], exec_: bool,
                                expected: RemoteCommandOptions) -> None:
    opts = RemoteCommandOptions.from_query(query, exec_=exec_)
    assert opts == expected
    pairs = opts.to_query()
    back: dict[str, list[str]] = {}
    for k, v in pairs:
        back.setdefault(k, []).append(v)
    assert RemoteCommandOptions.from_query(back, exec_=exec_) == opts


@pytest.mark.parametrize(("query", "exec_"), [
    pytest.param({"command": ["ls"]}, True, id="no-streams"),
    pytest.param({"stdout": ["true"]}, True, id="no-command"),
])
def test_remote_command_refusals(query: dict[str, list[str]], exec_: bool) -> None:
    with pytest.raises(OptionError):
        RemoteCommandOptions.from_query(query, exec_=exec_)


# --- summary ---------------------------------------------------------------------------------


def test_summary_round_trip() -> None:
    s = Summary("n1", dt.datetime(2026, 1, 1, 0, 0, 10, 500, tzinfo=dt.UTC), 10.0,
                Usage(9_000_000_000, 1536 << 20, 250_000_000),
                (PodStats("default", "x", "u1", (
                    ContainerStats("a", Usage(10, 100, 5)), ContainerStats("b", Usage(1, 1, 2)))),
                 PodStats("default", "y", "u2", (ContainerStats("c", Usage(3, 4)),))))
    doc = to_json(s)
    assert doc["pods"][0]["cpu"]["usageNanoCores"] == 7
    assert "usageNanoCores" not in doc["pods"][1]["cpu"]  # no rate yet
    assert from_json(json.loads(json.dumps(doc))) == s


@pytest.mark.parametrize("doc", [
    pytest.param([], id="not-object"),
    pytest.param({"node": {"nodeName": "n"}}, id="no-cpu"),
    pytest.param({"node": {"nodeName": "n", "cpu": {"time": "x"}, "memory": {}}},
                 id="bad-time"),
    pytest.param({"node": {"nodeName": "n", "cpu": {"time": "2026-01-01T00:00:00Z",
                                                    "usageNanoCores": -1}, "memory": {}}},
                 id="negative"),
    pytest.param({"node": {"nodeName": "n", "cpu": {"time": "2026-01-01T00:00:00Z"},
                           "memory": {}}, "pods": {}}, id="pods-not-list"),
])
def test_summary_refusals(doc: Any) -> None:
    with pytest.raises(SummaryError):
        from_json(doc)
