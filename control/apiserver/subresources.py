"""Subresources (status, scale, binding, eviction, log, finalize) and the computed review
resources.

``status`` writes only status (the strategy's status split), ``scale`` reads and writes
``spec.replicas`` through an ``autoscaling/v1`` Scale, ``binding`` assigns a pod to a node
once, ``eviction`` deletes a pod within its disruption budget (:mod:`.eviction`),
``finalize`` sets a namespace's ``spec.finalizers``.  Access and self reviews answer from the
authorizer and the caller's identity; nothing is stored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiohttp import web

from control.api.catalog import ResourceDef
from control.api.errors import APIError, BadRequest, Conflict, MethodNotAllowed, NotFound
from control.apiserver.rbac import (
    ReviewSpecError,
    UserInfo,
    access_review_status,
    rules_review_status,
)
from control.apiserver.requestinfo import RequestInfo
from control.apiserver.storage import GroupResource
from control.apiserver.strategies import strategy_for

from . import kubelet
from .codec import decode_body, read_body, respond
from .crd.resource import CustomResourceDef, get_path, present, set_path
from .eviction import evict
from .registry import WriteContext
from .serviceaccounts.tokenrequest import issue_token
from .state import APIState

__all__ = ["dispatch", "finalize_namespace", "review", "to_scale"]


def to_scale(rd: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if isinstance(rd, CustomResourceDef) and rd.scale is not None:
        # a custom resource's scale paths (kube's scale subresource for CRs)
        selector_text = get_path(obj, rd.scale.selector) if rd.scale.selector else ""
        replicas = get_path(obj, rd.scale.spec)
        current = get_path(obj, rd.scale.status)
        spec_replicas = replicas if isinstance(replicas, int) else 0
        status_replicas = current if isinstance(current, int) else 0
        selector = str(selector_text) if isinstance(selector_text, str) else ""
    else:
        labels = (spec.get("selector") or {}).get("matchLabels") or {}
        spec_replicas, status_replicas = spec.get("replicas", 0), status.get("replicas", 0)
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    out_status: dict[str, Any] = {"replicas": status_replicas}
    if selector or not isinstance(rd, CustomResourceDef):
        out_status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in meta},
            "spec": {"replicas": spec_replicas}, "status": out_status}


async def dispatch(request: web.Request, api: APIState, rd: ResourceDef, info: RequestInfo,
                   user: UserInfo, ctx: WriteContext) -> web.StreamResponse:
    from .resources import _one, patch  # the main-resource code paths, shared

    sub, verb = info.subresource, info.verb
    allowed = rd.subresource(sub)
    assert allowed is not None
    if verb not in allowed.verbs:
        raise MethodNotAllowed(f"{rd.resource}/{sub}", verb, group=rd.group)
    if sub == "scale":
        return await _scale(request, api, rd, info, ctx)
    if sub == "binding":
        return await _bind(request, api, ctx)
    if sub == "eviction":
        return await _evict(request, api, ctx)
    if sub == "log":
        return await kubelet.serve_log(request, api, info)
    if sub in ("exec", "attach", "portforward"):
        return await kubelet.serve_stream(request, api, info, user)
    if sub == "proxy":
        return await kubelet.serve_node_proxy(request, api, info)
    if sub == "token":
        body = decode_body(await read_body(request), request.headers.get("Content-Type"),
                           api_version="authentication.k8s.io/v1", kind="TokenRequest").obj
        return respond(await issue_token(api, info, user, body), 201)
    if verb == "get":
        return _one(request, rd, present(rd, await api.reader.get(rd, ctx.namespace, info.name)),
                    api)
    if verb == "patch":
        return await patch(request, api, ctx, info)
    body = decode_body(await read_body(request), request.headers.get("Content-Type"),
                       api_version=rd.api_version, kind=rd.kind).obj
    if sub == "finalize":
        return respond(await _finalize(api, ctx, body))
    return respond(present(rd, await api.registry.update(ctx, body)))


async def _scale(request: web.Request, api: APIState, rd: ResourceDef, info: RequestInfo,
                 ctx: WriteContext) -> web.Response:
    from .codec import media_type
    from .patches import apply_patch, parse_patch

    if info.verb == "get":
        return respond(to_scale(rd, await api.reader.get(rd, ctx.namespace, info.name)))
    expected: str | None = None
    if info.verb == "update":
        body = decode_body(await read_body(request), request.headers.get("Content-Type"),
                           api_version="autoscaling/v1", kind="Scale").obj
        wanted: Any = (body.get("spec") or {}).get("replicas")
        # the Scale's resourceVersion guards the write, as kube's scale REST does
        expected = (body.get("metadata") or {}).get("resourceVersion") or None
        doc = None
    else:
        media = media_type(request.headers.get("Content-Type"))
        doc, wanted = parse_patch(await read_body(request), media), None
    ctx.subresource = ""  # the write goes to the main resource's spec

    def mutate(old: dict[str, Any]) -> dict[str, Any]:
        replicas = wanted
        if doc is not None:
            scale = apply_patch(to_scale(rd, old), doc, media, kind="Scale",
                                api_version="autoscaling/v1", manager=ctx.field_manager,
                                force=info.options.force, now=api.inputs.timestamp())
            spec = scale.get("spec")
            replicas = spec.get("replicas") if isinstance(spec, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise APIError(422, "Invalid", f'Scale.autoscaling "{ctx.name}" is invalid: '
                           f"spec.replicas: Invalid value: {replicas!r}: must be greater than "
                           "or equal to 0")
        if isinstance(rd, CustomResourceDef) and rd.scale is not None:
            new = copy.deepcopy(old)
            set_path(new, rd.scale.spec, replicas)
            return new
        new = dict(old)
        new["spec"] = {**(old.get("spec") or {}), "replicas": replicas}
        return new

    out = await api.registry.mutate(ctx, mutate, expected_rv=expected)
    return respond(to_scale(rd, out))


async def _bind(request: web.Request, api: APIState, ctx: WriteContext) -> web.Response:
    body = decode_body(await read_body(request), request.headers.get("Content-Type")).obj
    target = body.get("target") or {}
    node = target.get("name")
    if not node or (target.get("kind") or "Node") != "Node":
        raise BadRequest("binding target must be a Node with a name")
    ctx.subresource = "binding"

    strategy = strategy_for("", "pods")
    now = api.inputs.timestamp()

    def bind(old: dict[str, Any]) -> dict[str, Any]:
        refused = strategy.apply_binding(old, node, now=now)  # type: ignore[attr-defined]
        if refused:
            raise Conflict("pods", ctx.name, why=refused)
        return old

    await api.storage.guaranteed_update(ctx.gr, ctx.namespace, ctx.name, bind)
    return respond({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "code": 201}, 201)


async def _evict(request: web.Request, api: APIState, ctx: WriteContext) -> web.Response:
    decoded = decode_body(await read_body(request), request.headers.get("Content-Type"),
                          api_version="policy/v1", kind="Eviction")
    decoded.drop_unknown()
    body = decoded.obj
    api_version, kind = body.get("apiVersion") or "policy/v1", body.get("kind") or "Eviction"
    if kind != "Eviction" or api_version not in ("policy/v1", "policy/v1beta1"):
        raise BadRequest(f"not a Eviction object: {api_version}, Kind={kind}")
    code, status = await evict(api, ctx, body)
    return respond(status, code)


async def _finalize(api: APIState, ctx: WriteContext, body: dict[str, Any]) -> dict[str, Any]:
    finalizers = (body.get("spec") or {}).get("finalizers") or []
    if not isinstance(finalizers, list):
        raise BadRequest("spec.finalizers must be a list")
    rv = (body.get("metadata") or {}).get("resourceVersion") or None
    return await finalize_namespace(api, ctx.name, lambda _current: finalizers,
                                    expected_rv=rv if isinstance(rv, str) else None)


async def finalize_namespace(api: APIState, name: str,
                             change: Callable[[list[Any]], list[Any]], *,
                             expected_rv: str | None = None) -> dict[str, Any]:
    """Set namespace ``name``'s ``spec.finalizers`` to ``change(current ones)``; a namespace
    being deleted whose finalizers are all gone is deleted (what ``/finalize`` does, and how
    the namespace cleanup ends).  With ``expected_rv`` (the body's resourceVersion, as in any
    update) the write is a compare-and-swap: 409 Conflict if the namespace changed since."""
    gr = GroupResource("", "namespaces")

    def fin(old: dict[str, Any]) -> dict[str, Any]:
        spec = old.setdefault("spec", {})
        spec["finalizers"] = change(list(spec.get("finalizers") or []))
        return old

    out = await api.storage.guaranteed_update(gr, "", name, fin,
                                              expected_resource_version=expected_rv)
    meta = out["metadata"]
    if meta.get("deletionTimestamp") and not out["spec"]["finalizers"] \
            and not meta.get("finalizers"):
        try:
            return await api.storage.delete(gr, "", name)
        except NotFound:
            pass
    return out


async def review(request: web.Request, api: APIState, rd: ResourceDef, info: RequestInfo,
                 user: UserInfo) -> web.Response:
    if info.verb != "create":
        raise MethodNotAllowed(rd.resource, info.verb, group=rd.group)
    body = decode_body(await read_body(request), request.headers.get("Content-Type")).obj
    spec = body.get("spec") or {}
    out = {"kind": rd.kind, "apiVersion": rd.api_version,
           "metadata": {"creationTimestamp": None}, "spec": spec}
    try:
        if rd.resource == "selfsubjectreviews":
            out.pop("spec")
            out["status"] = {"userInfo": user.to_status()}
        elif rd.resource == "selfsubjectaccessreviews":
            out["status"] = access_review_status(api.authorizer, user, spec)
        elif rd.resource == "selfsubjectrulesreviews":
            out["status"] = rules_review_status(api.rbac, user, spec.get("namespace", ""))
        else:  # subjectaccessreviews: about someone else
            subject = UserInfo(name=spec.get("user", ""), groups=tuple(spec.get("groups") or ()))
            out["status"] = access_review_status(api.authorizer, subject, spec)
    except ReviewSpecError as e:
        raise APIError(422, "Invalid", f'{rd.kind}.{rd.group} "" is invalid: {e}') from None
    return respond(out, 201)
