"""``pods/{exec,attach,portforward}``: authorize, find the pod's agent, open the same WebSocket
to it, upgrade the client, then copy messages both ways until one side closes.

kubectl 1.37 asks for a WebSocket (``GET``, ``v5.channel.k8s.io`` or
``SPDY/3.1+portforward.k8s.io``); if that upgrade is refused it retries as a SPDY ``POST`` and
shows *that* answer (``error: unable to upgrade connection: <message>``).  So every check runs
the same way for both, in the same order, and the POST gets the same Status the GET got;
a POST whose checks all pass is told to upgrade (this apiserver speaks only WebSocket).
A WebSocket GET needs ``create`` on the subresource as well as ``get`` (kube-apiserver since
1.35).  The agent ends with the exit status and a normal close, which is passed on as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from control.api.catalog import lookup
from control.api.errors import BadRequest
from control.api.streamproto import channels
from control.api.streamproto.options import (
    OptionError,
    RemoteCommandOptions,
    attach_path,
    exec_path,
    port_forward_path,
)
from control.apiserver.rbac import UserInfo, attributes_from_request, forbidden_status
from control.apiserver.requestinfo import RequestInfo

from ..codec import respond
from ..state import APIState
from .client import require
from .location import Endpoint, node_endpoint, pod_node, stream_container

__all__ = ["PORT_FORWARD_PROTOCOL", "relay", "serve_stream"]

PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
_PROTOCOLS = {"exec": channels.PROTOCOLS, "attach": channels.PROTOCOLS,
              "portforward": (PORT_FORWARD_PROTOCOL,)}
# close codes a server may send; anything else (1006: the agent vanished) becomes 1011
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")


def _offered(request: web.Request) -> list[str]:
    header = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in header.split(",") if p.strip()]


def _is_websocket(request: web.Request) -> bool:
    return request.method == "GET" and \
        request.headers.get("Upgrade", "").lower() == "websocket"


def _create_denied(api: APIState, user: UserInfo, info: RequestInfo) -> web.Response | None:
    """The WebSocket GET also needs ``create`` (AuthorizePodWebsocketUpgradeCreatePermission)."""
    attrs = dataclasses.replace(attributes_from_request(user, info), verb="create")
    decision = api.authorizer.authorize(attrs)
    return None if decision.allowed else respond(forbidden_status(attrs, decision.reason), 403)


async def _target(api: APIState, info: RequestInfo,
                  query: dict[str, list[str]]) -> tuple[Endpoint, str, list[tuple[str, str]]]:
    """The agent, its path and query for this request; the API error kube-apiserver answers
    when there is none (in kube's order: options, pod, container, node)."""
    sub = info.subresource
    opts = RemoteCommandOptions()
    if sub != "portforward":
        try:
            opts = RemoteCommandOptions.from_query(query, exec_=sub == "exec")
        except OptionError as e:
            raise BadRequest(e.why) from None
    assert PODS is not None and NODES is not None
    pod = await api.reader.get(PODS, info.namespace, info.name)
    uid = str(pod["metadata"].get("uid", ""))
    container = ""
    if sub != "portforward":
        container = stream_container(pod, (query.get("container") or [""])[0])
    node = await api.reader.get(NODES, "", pod_node(pod))
    endpoint = node_endpoint(node)
    if sub == "exec":
        path = exec_path(info.namespace, info.name, uid, container)
    elif sub == "attach":
        path = attach_path(info.namespace, info.name, uid, container)
    else:
        path = port_forward_path(info.namespace, info.name, uid)
    return endpoint, path, opts.to_query()


async def serve_stream(request: web.Request, api: APIState, info: RequestInfo,
                       user: UserInfo) -> web.StreamResponse:
    """Serve one exec, attach or port-forward request (GET upgrade, or kubectl's SPDY POST)."""
    sub = info.subresource
    if request.method == "GET":
        denied = _create_denied(api, user, info)
        if denied is not None:
            return denied
    query = {k: request.query.getall(k) for k in request.query}
    endpoint, path, agent_query = await _target(api, info, query)
    kubelet = require(api.kubelet)
    protocol = next((p for p in _offered(request) if p in _PROTOCOLS[sub]), None)
    if not _is_websocket(request) or protocol is None:
        await kubelet.probe(endpoint)  # an unreachable agent is the real reason: say so
        raise BadRequest(f"Upgrade request required: this apiserver serves pods/{sub} over a "
                         f"WebSocket ({', '.join(_PROTOCOLS[sub])})")
    backend = await kubelet.ws_connect(endpoint, path, agent_query, protocol)
    try:
        client = web.WebSocketResponse(protocols=(protocol,), max_msg_size=4 * 1024 * 1024)
        await client.prepare(request)
        await relay(client, backend)
    finally:
        await backend.close()
    return client


async def _pump(src: Any, dst: Any) -> None:
    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
        async for msg in src:
            if msg.type == WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await dst.send_str(msg.data)


async def relay(client: web.WebSocketResponse, backend: aiohttp.ClientWebSocketResponse) -> None:
    """Copy messages both ways until one side closes, then close the other: with the agent's
    own close code when the agent ended (1000 after the status), 1011 if it vanished."""
    down = asyncio.create_task(_pump(backend, client), name="relay-down")
    up = asyncio.create_task(_pump(client, backend), name="relay-up")
    try:
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (down, up):
            t.cancel()
        await asyncio.wait({down, up})
    if down in done:
        code = backend.close_code
        await client.close(code=code if code in _SENDABLE else 1011)
    else:
        await backend.close()
