"""``pods/log``: validate ``PodLogOptions``, pick the container, and stream the agent's
``text/plain`` answer through unchanged (each chunk as it comes, so ``-f`` follows).

An unscheduled pod has no logs yet: an empty answer, as kube-apiserver gives (its location
is empty).  The agent's refusals (never ran, no previous instance) are Status answers that are
passed on with their code and kubelet's message.
"""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from control.api.catalog import lookup
from control.api.errors import APIError, Cause, Invalid, from_status
from control.api.streamproto.options import LogOptions, OptionError, logs_path
from control.apiserver.requestinfo import RequestInfo

from ..state import APIState
from .client import require
from .location import log_container, node_endpoint

__all__ = ["serve_log"]

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
_MAX_ERROR_BODY = 64 * 1024


def _invalid(name: str, e: OptionError) -> Invalid:
    if not e.field:
        cause = Cause("FieldValueForbidden", f"Forbidden: {e.why}", "")
    else:
        cause = Cause("FieldValueInvalid", f"Invalid value: {e.value}: {e.why}", e.field)
    return Invalid("PodLogOptions", name, [cause])


async def agent_error(resp: aiohttp.ClientResponse) -> APIError:
    """The API error an agent's non-200 answer stands for (its Status, or its text)."""
    body = await resp.content.read(_MAX_ERROR_BODY)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = body
    return from_status(resp.status, doc)


async def serve_log(request: web.Request, api: APIState, info: RequestInfo) -> web.StreamResponse:
    query = {k: request.query.getall(k) for k in request.query}
    try:
        opts = LogOptions.from_query(query)
    except OptionError as e:
        raise _invalid(info.name, e) from None
    assert PODS is not None and NODES is not None
    pod = await api.reader.get(PODS, info.namespace, info.name)
    container = log_container(pod, (query.get("container") or [""])[0])
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        return web.Response(body=b"", content_type="text/plain")
    endpoint = node_endpoint(await api.reader.get(NODES, "", node_name))
    agent_query = [("podUID", str(pod["metadata"].get("uid", ""))), *opts.to_query()]
    async with require(api.kubelet).get(endpoint, logs_path(info.namespace, info.name, container),
                                 agent_query) as resp:
        if resp.status != 200:
            raise await agent_error(resp)
        out = web.StreamResponse()
        out.content_type = "text/plain"
        await out.prepare(request)
        try:
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
        except (aiohttp.ClientError, ConnectionError):
            pass  # the agent went away mid-stream: the log ends here, as kubectl -f sees
        await out.write_eof()
    return out
