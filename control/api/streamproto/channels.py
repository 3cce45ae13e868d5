"""The WebSocket channel protocols of exec and attach (``v5.channel.k8s.io``, ``v4.channel.k8s.io``).

Every message is binary: byte 0 names the channel, the rest is that channel's payload.  The
client writes stdin (0), terminal sizes (4) and, in v5 only, the close signal (255, payload =
the channel it closes: ``[255, 0]`` is stdin's EOF); the server writes stdout (1), stderr (2)
and exactly one ``Status`` on the error channel (3), then closes the WebSocket with 1000.
kubectl reads a missing status as success, so the status is never optional.

Pure encoding and decoding, shared by the node agent's streaming server and by the apiserver
(which relays messages unchanged, but validates and tests with these).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLOSE",
    "ERROR",
    "PROTOCOLS",
    "RESIZE",
    "STDERR",
    "STDIN",
    "STDOUT",
    "V4",
    "V5",
    "ChannelError",
    "Message",
    "ResizeDecoder",
    "TerminalSize",
    "decode",
    "encode",
    "encode_resize",
    "exit_code_of",
    "exit_status",
    "failure_status",
    "success_status",
]

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
#: The channel protocols served, in the order a server prefers them.
PROTOCOLS = (V5, V4)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
#: v5 only: "this channel is closed" (stdin's EOF).
CLOSE = 255

#: Terminal sizes are JSON objects of two small numbers; anything longer is not one.
_MAX_RESIZE_BUFFER = 4096


class ChannelError(ValueError):
    """A message that is not a channel message (empty, malformed resize)."""


@dataclass(frozen=True)
class Message:
    """One decoded message: its channel and payload."""

    channel: int
    payload: bytes


@dataclass(frozen=True)
class TerminalSize:
    """A terminal's size in character cells (client-go ``remotecommand.TerminalSize``)."""

    width: int
    height: int


def encode(channel: int, payload: bytes = b"") -> bytes:
    """The binary message carrying ``payload`` on ``channel``."""
    if not 0 <= channel <= 255:
        raise ChannelError(f"channel {channel} is not a byte")
    return bytes((channel,)) + payload


def decode(message: bytes) -> Message:
    """Split a binary message into channel and payload; ChannelError if it is empty."""
    if not message:
        raise ChannelError("an empty message has no channel byte")
    return Message(message[0], bytes(message[1:]))


def encode_resize(size: TerminalSize) -> bytes:
    """The resize message kubectl sends: ``{"Width":W,"Height":H}`` on channel 4."""
    return encode(RESIZE, json.dumps({"Width": size.width, "Height": size.height},
                                     separators=(",", ":")).encode())


def _dimension(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise ChannelError(f"terminal size {key} must be an integer 0-65535, not {value!r}")
    return value


class ResizeDecoder:
    """The resize channel as a stream of JSON objects (client-go writes each with a newline;
    a Go decoder on the other side would accept them split or joined, so this does too).

    ``feed(payload)`` yields every complete size; a partial object waits for the next payload.
    Raises ChannelError on something that is not a size object, or on more than 4 KiB of
    unfinished input.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._json = json.JSONDecoder()

    def feed(self, payload: bytes) -> Iterator[TerminalSize]:
        try:
            self._buffer += payload.decode()
        except UnicodeDecodeError:
            raise ChannelError("terminal sizes are JSON text") from None
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return
            try:
                doc, end = self._json.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) > _MAX_RESIZE_BUFFER:
                    raise ChannelError("terminal size is not JSON") from None
                self._buffer = text
                return
            self._buffer = text[end:]
            if not isinstance(doc, dict):
                raise ChannelError(f"terminal size must be an object, not {doc!r}")
            yield TerminalSize(_dimension(doc, "Width"), _dimension(doc, "Height"))


# --- the Status on the error channel --------------------------------------------------------


def _status_bytes(status: dict[str, Any]) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


def success_status() -> bytes:
    """``{"metadata":{},"status":"Success"}``: the command exited 0 (or the attach ended)."""
    return _status_bytes({"metadata": {}, "status": "Success"})


def exit_status(code: int, command: Sequence[str]) -> bytes:
    """The ``NonZeroExitCode`` Status kubelet writes, which kubectl turns into
    ``command terminated with exit code N`` and its own exit code N."""
    if code == 0:
        return success_status()
    shown = " ".join(command)
    return _status_bytes({
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
                   f"[{shown}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}})


def failure_status(message: str, *, reason: str = "InternalError", code: int = 500) -> bytes:
    """Any other failure (the command could not start, the container is not running):
    kubectl prints ``error: <message>`` and exits 1."""
    return _status_bytes({"metadata": {}, "status": "Failure", "message": message,
                          "reason": reason, "code": code})


def exit_code_of(payload: bytes) -> int | None:
    """What a client makes of the error channel's Status (client-go ``errorDecoderV4``):
    0 for Success, the ``ExitCode`` cause for NonZeroExitCode, None for any other failure.
    Raises ChannelError when the payload is not a Status."""
    try:
        status = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ChannelError("the error channel carries a JSON Status") from None
    if not isinstance(status, dict):
        raise ChannelError("the error channel carries a JSON Status object")
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or ():
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    raise ChannelError(f"exit code {cause.get('message')!r} is not a number") \
                        from None
    return None
