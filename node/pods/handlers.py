"""Running a probe's or a lifecycle hook's action against a container: ``exec`` (through the
runtime), ``httpGet``, ``tcpSocket`` (to the pod's IP) and, for hooks, ``sleep``.

Every action is bounded by a timeout on the injected clock (:func:`with_timeout`), so a probe
that hangs fails after ``timeoutSeconds`` instead of holding the worker, in tests as in
production.  The outcome is a :class:`HandlerResult` whose message is what the kubelet's
events say (``HTTP probe failed with statuscode: 500``...).  :class:`ActionRunner` is the real
implementation of the :class:`Actions` seam; tests may inject their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from control.api.clock import Clock
from node.runtime.api import ExecError, Runtime, RuntimeError_
from node.runtime.network import pod_port

from .containers import resolve_port

__all__ = ["ActionContext", "ActionRunner", "Actions", "HandlerResult", "with_timeout"]

T = TypeVar("T")
_USER_AGENT = "kube-probe/1.37"
_MAX_OUTPUT = 10 * 1024


@dataclass(frozen=True)
class HandlerResult:
    ok: bool
    message: str = ""


@dataclass(frozen=True)
class ActionContext:
    """The container an action runs against."""

    pod: Mapping[str, Any]
    container: Mapping[str, Any]
    container_id: str
    pod_ip: str


class Actions(Protocol):
    async def run(self, action: Mapping[str, Any], ctx: ActionContext,
                  timeout: float) -> HandlerResult:
        """Run ``action`` (a Probe or LifecycleHandler object); never raises for the
        action's own failure."""
        ...


async def with_timeout(clock: Clock, seconds: float, aw: Awaitable[T]) -> T:
    """``aw``'s result, or TimeoutError after ``seconds`` on ``clock`` (``aw`` is then
    cancelled).  Cancelling the caller cancels ``aw``."""
    task = asyncio.ensure_future(aw)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if task.cancelled():
        raise TimeoutError
    return task.result()


class ActionRunner:
    """Runs actions for real: exec through ``runtime``, HTTP and TCP over the network."""

    def __init__(self, runtime: Runtime, clock: Clock) -> None:
        self.runtime = runtime
        self.clock = clock

    async def run(self, action: Mapping[str, Any], ctx: ActionContext,
                  timeout: float) -> HandlerResult:
        try:
            return await with_timeout(self.clock, timeout, self._run(action, ctx, timeout))
        except TimeoutError:
            return HandlerResult(False, _timeout_message(action, ctx, timeout))
        except ValueError as e:  # a named port the container does not have
            return HandlerResult(False, str(e))

    async def _run(self, action: Mapping[str, Any], ctx: ActionContext,
                   timeout: float) -> HandlerResult:
        if "exec" in action:
            command = list((action.get("exec") or {}).get("command") or [])
            try:
                result = await self.runtime.exec_sync(ctx.container_id, command,
                                                      timeout=timeout)
            except (ExecError, RuntimeError_) as e:
                return HandlerResult(False, str(e))
            output = result.output[:_MAX_OUTPUT].decode(errors="replace")
            if result.timed_out:
                return HandlerResult(False, _timeout_message(action, ctx, timeout))
            if result.exit_code != 0:
                return HandlerResult(False, output or f"command {command} exited with "
                                                      f"{result.exit_code}")
            return HandlerResult(True, output)
        if "httpGet" in action:
            return await self._http(action["httpGet"] or {}, ctx)
        if "tcpSocket" in action:
            spec = action["tcpSocket"] or {}
            host, port = spec.get("host") or ctx.pod_ip, _port(ctx, spec)
            try:
                _, writer = await asyncio.open_connection(host, pod_port(port))
            except OSError as e:
                return HandlerResult(False, f"dial tcp {host}:{port}: connect: "
                                            f"{_reason(e)}")
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return HandlerResult(True)
        if "sleep" in action:
            await self.clock.sleep(float((action["sleep"] or {}).get("seconds", 0)))
            return HandlerResult(True)
        if "grpc" in action:
            return HandlerResult(False, "gRPC probes are not supported by this node")
        return HandlerResult(False, "the action has no exec, httpGet, tcpSocket or sleep")

    async def _http(self, spec: Mapping[str, Any], ctx: ActionContext) -> HandlerResult:
        scheme = str(spec.get("scheme") or "HTTP").lower()
        host = spec.get("host") or ctx.pod_ip
        port = _port(ctx, spec)
        path = spec.get("path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        url = f"{scheme}://{host}:{port}{path}"
        headers = {"Host": f"{host}:{port}", "User-Agent": _USER_AGENT, "Accept": "*/*",
                   "Connection": "close"}
        for h in spec.get("httpHeaders") or []:
            headers[str(h.get("name"))] = str(h.get("value", ""))
        context = None
        if scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            reader, writer = await asyncio.open_connection(host, pod_port(port), ssl=context)
        except OSError as e:
            return HandlerResult(False, f'Get "{url}": dial tcp {host}:{port}: connect: '
                                        f"{_reason(e)}")
        try:
            request = f"GET {path} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(request.encode())
            await writer.drain()
            line = await reader.readline()
        except OSError as e:
            return HandlerResult(False, f'Get "{url}": {_reason(e)}')
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        parts = line.decode(errors="replace").split()
        if len(parts) < 2 or not parts[1].isdigit():
            return HandlerResult(False, f'Get "{url}": malformed HTTP response {line!r}')
        code = int(parts[1])
        if 200 <= code < 400:
            return HandlerResult(True)
        return HandlerResult(False, f"HTTP probe failed with statuscode: {code}")


def _port(ctx: ActionContext, spec: Mapping[str, Any]) -> int:
    return resolve_port(ctx.container, spec.get("port", 0))


def _reason(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    return (e.strerror or str(e)).lower()


def _timeout_message(action: Mapping[str, Any], ctx: ActionContext, timeout: float) -> str:
    if "exec" in action:
        command = (action.get("exec") or {}).get("command") or []
        return f"command {command!r} timed out"
    if "httpGet" in action:
        return (f'Get "http://{ctx.pod_ip}:{(action["httpGet"] or {}).get("port")}'
                f'{(action["httpGet"] or {}).get("path") or "/"}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)")
    return f"the action timed out after {timeout:g}s"
