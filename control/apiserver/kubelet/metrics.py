"""``metrics.k8s.io/v1beta1`` (metrics-server's job, built in): NodeMetrics and PodMetrics, get
and list, computed on each request from the node agents' ``/stats/summary``.

A list asks every Ready node's agent at once with a short timeout; an agent that does not
answer in time, answers nonsense, or has no CPU rate yet (one sample so far) contributes nothing,
as metrics-server skips a node it could not scrape.  A get asks only the node concerned.  Pods
are matched to the API's pods by namespace, name and UID; their labels (for ``-l``) and fields
(for ``--field-selector``) are the pod's, as metrics-server filters.  Nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from fractions import Fraction
from typing import Any

import aiohttp
from aiohttp import web

from control.api.catalog import ResourceDef, lookup
from control.api.clock import format_time
from control.api.errors import APIError, MethodNotAllowed, NotFound
from control.api.quantity import BINARY_SI, DECIMAL_SI, format_quantity
from control.api.streamproto.options import SUMMARY_PATH
from control.api.streamproto.summary import Summary, SummaryError, Usage, from_json
from control.apiserver.requestinfo import RequestInfo

from ..codec import respond
from ..reads import make_filter
from ..state import APIState
from .client import KubeletClient, require
from .location import node_endpoint, node_is_ready, pod_node

__all__ = ["GROUP", "METRICS_RESOURCES", "VERSION", "go_duration", "serve_metrics"]

log = logging.getLogger("ketch.apiserver")

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
#: Served by every apiserver, never stored: discovery lists them beside the catalog's.
METRICS_RESOURCES = (
    ResourceDef(GROUP, VERSION, "nodes", "NodeMetrics", False, verbs=("get", "list")),
    ResourceDef(GROUP, VERSION, "pods", "PodMetrics", True, verbs=("get", "list")),
)
#: How long a list waits for the slowest agent.
FANOUT_TIMEOUT = 3.0
_MAX_SUMMARY = 8 * 1024 * 1024
PODS, NODES = lookup("", "v1", "pods"), lookup("", "v1", "nodes")


def go_duration(seconds: float) -> str:
    """A ``metav1.Duration`` as Go prints it, to the millisecond: ``500ms``, ``10s``,
    ``10.5s``, ``1m30s``."""
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{secs}" if minutes else secs


def _usage(u: Usage) -> dict[str, str]:
    return {"cpu": format_quantity(Fraction(u.cpu_nano_cores or 0, 10**9), DECIMAL_SI),
            "memory": format_quantity(u.memory_working_set_bytes, BINARY_SI)}


async def _summary(kubelet: KubeletClient, node: dict[str, Any]) -> Summary | None:
    name = node["metadata"]["name"]
    try:
        endpoint = node_endpoint(node)
        async with kubelet.get(endpoint, SUMMARY_PATH, timeout=FANOUT_TIMEOUT) as resp:
            if resp.status != 200:
                log.info("metrics: node %s answered %s", name, resp.status)
                return None
            summary = from_json(json.loads(await resp.content.read(_MAX_SUMMARY)))
    except (TimeoutError, APIError, SummaryError, ValueError, aiohttp.ClientError) as e:
        log.info("metrics: no summary from node %s: %s", name, e)
        return None
    return summary if summary.node_name == name else None


async def _summaries(api: APIState, nodes: list[dict[str, Any]]) -> list[Summary]:
    kubelet = require(api.kubelet)
    found = await asyncio.gather(*(_summary(kubelet, n) for n in nodes))
    return [s for s in found if s is not None]


def _meta(obj: dict[str, Any], now: str, *, namespaced: bool) -> dict[str, Any]:
    meta = obj["metadata"]
    out: dict[str, Any] = {"name": meta["name"], "creationTimestamp": now}
    if namespaced:
        out["namespace"] = meta.get("namespace", "")
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    return out


def _node_metrics(api: APIState, summaries: list[Summary], now: str) -> list[dict[str, Any]]:
    out = []
    for s in summaries:
        node = api.view.get("", "nodes", "", s.node_name)
        if node is None or s.node.cpu_nano_cores is None:
            continue
        out.append({"kind": "NodeMetrics", "apiVersion": API_VERSION,
                    "metadata": _meta(node, now, namespaced=False),
                    "timestamp": format_time(s.time), "window": go_duration(s.window_seconds),
                    "usage": _usage(s.node)})
    return out


def _pod_metrics(api: APIState, summaries: list[Summary],
                 now: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(PodMetrics, the pod) for every pod with a complete measurement."""
    out = []
    for s in summaries:
        for p in s.pods:
            pod = api.view.get("", "pods", p.namespace, p.name)
            if pod is None or (p.uid and pod["metadata"].get("uid") != p.uid):
                continue
            if not p.containers or any(c.usage.cpu_nano_cores is None for c in p.containers):
                continue
            metrics = {"kind": "PodMetrics", "apiVersion": API_VERSION,
                       "metadata": _meta(pod, now, namespaced=True),
                       "timestamp": format_time(s.time), "window": go_duration(s.window_seconds),
                       "containers": [{"name": c.name, "usage": _usage(c.usage)}
                                      for c in p.containers]}
            out.append((metrics, pod))
    return out


async def serve_metrics(request: web.Request, api: APIState,
                        info: RequestInfo) -> web.Response:
    rd = next((r for r in METRICS_RESOURCES
               if (r.version, r.resource) == (info.api_version, info.resource)), None)
    if rd is None or info.subresource:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    if info.verb not in rd.verbs:
        raise MethodNotAllowed(rd.resource, info.verb, group=GROUP)
    assert PODS is not None and NODES is not None
    now = format_time(api.inputs.now())
    if rd.resource == "nodes":
        if info.verb == "get":
            node = await api.reader.get(NODES, "", info.name)
            items = _node_metrics(api, await _summaries(api, [node]), now)
            if not items:
                raise NotFound("nodemetrics", info.name, group=GROUP)
            return respond(items[0])
        flt = make_filter(NODES, info.options)
        nodes = [n for n in api.view.list("", "nodes") if node_is_ready(n) and flt.matches(n)]
        items = _node_metrics(api, await _summaries(api, nodes), now)
        return respond({"kind": "NodeMetricsList", "apiVersion": API_VERSION,
                        "metadata": {}, "items": items})
    if info.verb == "get":
        pod = await api.reader.get(PODS, info.namespace, info.name)
        host = api.view.get("", "nodes", "", pod_node(pod))
        found = _pod_metrics(api, await _summaries(api, [host] if host else []), now)
        mine = [m for m, p in found if p["metadata"].get("uid") == pod["metadata"].get("uid")]
        if not mine:
            raise NotFound("podmetrics", f"{info.namespace}/{info.name}", group=GROUP)
        return respond(mine[0])
    flt = make_filter(PODS, info.options)
    nodes = [n for n in api.view.list("", "nodes") if node_is_ready(n)]
    pods = [m for m, p in _pod_metrics(api, await _summaries(api, nodes), now)
            if (not info.namespace or p["metadata"].get("namespace") == info.namespace)
            and flt.matches(p)]
    pods.sort(key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))
    return respond({"kind": "PodMetricsList", "apiVersion": API_VERSION, "metadata": {},
                    "items": pods})
