"""``nodes/{name}/proxy/{path}``: a GET passed to the node's agent (``/stats/summary``,
``/containerLogs/…``, ``/healthz``), its status, type and body streamed back.

Only plain GETs: an upgrade (exec, attach, port-forward) must come through the pod
subresources, whose authorization names the pod; ``nodes/proxy`` reaching them would be the
well-known way around it.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from control.api.catalog import lookup
from control.api.errors import BadRequest, MethodNotAllowed
from control.apiserver.requestinfo import RequestInfo

from ..state import APIState
from .client import require
from .location import node_endpoint

__all__ = ["serve_node_proxy"]

NODES = lookup("", "v1", "nodes")


async def serve_node_proxy(request: web.Request, api: APIState,
                           info: RequestInfo) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed("nodes/proxy", request.method)
    if request.headers.get("Upgrade"):
        raise BadRequest("nodes/proxy does not upgrade connections; use pods/exec, "
                         "pods/attach or pods/portforward")
    assert NODES is not None
    endpoint = node_endpoint(await api.reader.get(NODES, "", info.name))
    path = "/" + "/".join(info.parts[3:])
    if request.path.endswith("/") and not path.endswith("/"):
        path += "/"
    query = [(k, v) for k in request.query for v in request.query.getall(k)]
    async with require(api.kubelet).get(endpoint, path, query) as resp:
        out = web.StreamResponse(status=resp.status)
        out.content_type = resp.content_type or "application/octet-stream"
        await out.prepare(request)
        try:
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
        except (aiohttp.ClientError, ConnectionError):
            pass
        await out.write_eof()
    return out
