"""HTTP handlers of resource requests: the verbs of every stored resource and its subresources.

Authentication and authorization have run (:mod:`pipeline`); here the request is decoded,
handed to the registry or the reader, and the answer encoded (as a Table when kubectl asks).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from aiohttp import web

from control.api.catalog import ResourceDef
from control.api.errors import (
    APIError,
    BadRequest,
    Cause,
    Forbidden,
    Invalid,
    MethodNotAllowed,
    NotFound,
)
from control.apiserver.rbac import UserInfo
from control.apiserver.requestinfo import RequestInfo
from control.apiserver.tables import table_for

from . import kubelet, subresources
from .codec import (
    PATCH_TYPES,
    Decoded,
    decode_body,
    drop_unknown_fields,
    media_type,
    read_body,
    respond,
    strict_problems,
    unknown_fields,
)
from .crd.printing import custom_table
from .crd.resource import CustomResourceDef, present
from .crd.selection import filter_for
from .patches import APPLY, apply_patch, parse_patch, patch_resource_version
from .registry import WriteContext, patch_schema_of
from .state import APIState
from .unserved import unserved_subresource
from .watching import serve_watch

__all__ = ["handle_resource", "render", "wants_table"]

_STRATEGIC = "application/strategic-merge-patch+json"


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def render(request: web.Request, rd: ResourceDef, objects: list[dict[str, Any]],
           list_meta: dict[str, Any], api: APIState) -> dict[str, Any]:
    include = request.query.get("includeObject", "Metadata")
    try:
        if isinstance(rd, CustomResourceDef):
            return custom_table(rd.columns, [present(rd, o) for o in objects],
                                list_meta=list_meta, include_object=include,
                                now=api.inputs.now())
        return table_for(rd.kind, objects, list_meta=list_meta, include_object=include,
                         now=api.inputs.now())
    except ValueError as e:
        raise BadRequest(str(e)) from None


_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions",
                 "delete": "DeleteOptions", "deletecollection": "DeleteOptions"}


def _invalid_options(info: RequestInfo, cause: Cause) -> Invalid:
    """A write's options that do not validate: 422 on ``CreateOptions.meta.k8s.io`` (etc.),
    as kube-apiserver's handlers answer ``ValidateCreateOptions`` & co."""
    kind = _OPTIONS_KIND.get(info.verb, "CreateOptions")
    return Invalid(kind, "", [cause], group="meta.k8s.io")


def _manager(request: web.Request, info: RequestInfo) -> str:
    """``fieldManager``, else the User-Agent's program name, as kube-apiserver does."""
    if info.options.field_manager:
        if len(info.options.field_manager) > 128:
            raise _invalid_options(info, Cause(
                "FieldValueTooLong", "Too long: may not be more than 128 bytes", "fieldManager"))
        return info.options.field_manager
    agent = request.headers.get("User-Agent", "")
    return agent.split("/", 1)[0][:128] or "unknown"


def _dry_run(info: RequestInfo) -> bool:
    if info.verb not in _OPTIONS_KIND:
        return False  # reads have no dryRun
    bad = [v for v in info.options.dry_run if v != "All"]
    if bad:
        shown = "[]string{" + ", ".join(json.dumps(v) for v in info.options.dry_run) + "}"
        raise _invalid_options(info, Cause(
            "FieldValueNotSupported", f'Unsupported value: {shown}: supported values: "All"',
            "dryRun"))
    return bool(info.options.dry_run)


def _decoded(request: web.Request, rd: ResourceDef, body: bytes) -> Decoded:
    """A create/update body; a custom object's unknown fields are those its schema prunes."""
    decoded = decode_body(body, request.headers.get("Content-Type"),
                          api_version=rd.api_version, kind=rd.kind)
    if isinstance(rd, CustomResourceDef):
        decoded.unknown = rd.unknown_fields(decoded.obj)
    return decoded


def _validated(info: RequestInfo, decoded: Decoded) -> tuple[dict[str, Any], list[str]]:
    """Apply fieldValidation: Strict refuses, Warn warns, Ignore drops silently; unknown
    fields are never kept (Go's decoder has nowhere to put them)."""
    mode = info.options.field_validation or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise _invalid_options(info, Cause(
            "FieldValueNotSupported", f'Unsupported value: "{mode}": supported values: "", '
            '"Ignore", "Strict", "Warn"', "fieldValidation"))
    problems = strict_problems(decoded)
    if problems and mode == "Strict":
        raise BadRequest("strict decoding error: " + ", ".join(problems))
    decoded.drop_unknown()
    return decoded.obj, problems if mode == "Warn" else []


def _warned(resp: web.Response, warnings: list[str]) -> web.Response:
    """RFC 7234 warn-text is a quoted string: inner quotes escaped, as Go's ``strconv.Quote``
    (client-go's ``ParseWarningHeader`` drops a header it cannot parse)."""
    for w in warnings:
        # ASCII escapes (\uXXXX, which strconv.Unquote reads): a field name from the body may
        # hold any character, and a header may hold no control character or lone surrogate
        resp.headers.add("Warning", f"299 - {json.dumps(w)}")
    return resp


async def handle_resource(request: web.Request, api: APIState, info: RequestInfo,
                          user: UserInfo) -> web.StreamResponse:
    if info.api_group == kubelet.metrics.GROUP:  # served from the node agents, not stored
        return await kubelet.serve_metrics(request, api, info)
    rd = api.catalog.lookup(info.api_group, info.api_version, info.resource)
    if rd is None:  # no such route: what kube-apiserver's not-found handler answers
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    if info.options.errors:
        raise BadRequest("; ".join(info.options.errors))
    if rd.namespaced and not info.namespace and info.verb not in ("list", "watch"):
        raise NotFound(info.resource, info.name, group=rd.group)
    if rd.virtual:
        return await subresources.review(request, api, rd, info, user)
    if isinstance(rd, CustomResourceDef) and rd.terminating and info.verb == "create":
        raise Forbidden(rd.resource, info.name, "create not allowed while custom resource "
                        "definition is terminating", group=rd.group)
    if info.subresource:
        if rd.subresource(info.subresource) is None:
            raise unserved_subresource(rd.group, rd.resource, info.subresource)
        return await subresources.dispatch(request, api, rd, info, user, _context(
            request, rd, info, user))
    if info.verb not in rd.verbs:
        raise MethodNotAllowed(rd.resource, info.verb, group=rd.group)
    ctx = _context(request, rd, info, user)
    if info.verb == "get":
        obj = await api.reader.get(rd, ctx.namespace, info.name,
                                   info.options.resource_version)
        return _one(request, rd, present(rd, obj), api)
    if info.verb == "list":
        flt = filter_for(rd, info.options)
        items, meta = await api.reader.list(rd, ctx.namespace, info.options, flt)
        if wants_table(request):
            return respond(render(request, rd, items, meta, api))
        items = [present(rd, o) for o in items]
        return respond({"kind": rd.list_kind, "apiVersion": rd.api_version, "metadata": meta,
                        "items": items})
    if info.verb == "watch":
        return await serve_watch(request, api, rd, info, wants_table(request))
    if info.verb == "create":
        obj, warnings = _validated(info, _decoded(request, rd, await read_body(request)))
        out = await api.registry.create(ctx, obj)
        return _warned(respond(present(rd, out), 201), warnings)
    if info.verb == "update":
        obj, warnings = _validated(info, _decoded(request, rd, await read_body(request)))
        out = await api.registry.update(ctx, obj)
        return _warned(respond(present(rd, out)), warnings)
    if info.verb == "patch":
        return await patch(request, api, ctx, info)
    if info.verb == "delete":
        return await delete(request, api, ctx, info)
    if info.verb == "deletecollection":
        return await delete_collection(request, api, ctx, info)
    raise MethodNotAllowed(rd.resource, info.verb, group=rd.group)


def _context(request: web.Request, rd: ResourceDef, info: RequestInfo,
             user: UserInfo) -> WriteContext:
    return WriteContext(user=user, rd=rd, namespace=info.namespace if rd.namespaced else "",
                        name=info.name, subresource=info.subresource,
                        field_manager=_manager(request, info), dry_run=_dry_run(info))


def _one(request: web.Request, rd: ResourceDef, obj: dict[str, Any],
         api: APIState, status: int = 200) -> web.Response:
    if wants_table(request):
        return respond(render(request, rd, [obj], {"resourceVersion":
                                                   obj["metadata"].get("resourceVersion", "")},
                              api), status)
    return respond(obj, status)


async def patch(request: web.Request, api: APIState, ctx: WriteContext,
                info: RequestInfo, *, transform: Any = None) -> web.Response:
    """PATCH of the object (or of its status): read, patch, run the update pipeline, CAS."""
    media = media_type(request.headers.get("Content-Type"))
    custom = isinstance(ctx.rd, CustomResourceDef)
    accepted = [t for t in PATCH_TYPES if not (custom and t == _STRATEGIC)]
    if media not in accepted:
        raise APIError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media "
                       f"types include: {', '.join(accepted)}")
    doc = parse_patch(await read_body(request), media)
    warnings: list[str] = []
    if isinstance(doc, dict):
        typed = {**doc, "apiVersion": ctx.rd.api_version, "kind": ctx.rd.kind}
        found = ctx.rd.unknown_fields(typed) if isinstance(ctx.rd, CustomResourceDef) else \
            unknown_fields(ctx.rd.api_version, ctx.rd.kind, typed)
        unknown = [p for p in found if not any(part.startswith("$") for part in p.split("."))]
        _, warnings = _validated(info, Decoded(doc, unknown, []))
    rd, now = ctx.rd, api.inputs.timestamp()
    force = info.options.force
    has_status = rd.subresource("status") is not None
    if media == APPLY:
        ctx.extra["apply"] = True
        meta = doc.get("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("error decoding patch: metadata must be an object")
        if meta.get("name", ctx.name) != ctx.name:
            raise BadRequest("the name of the object does not match the name on the URL")
        try:
            await api.storage.get(ctx.gr, ctx.namespace, ctx.name)
        except NotFound:
            if ctx.subresource:
                raise
            created = apply_patch(None, doc, media, kind=rd.kind, api_version=rd.api_version,
                                  manager=ctx.field_manager, force=force, now=now,
                                  ignore_status=has_status, schema=patch_schema_of(rd))
            created.setdefault("metadata", {})["name"] = ctx.name
            drop_unknown_fields(rd.api_version, rd.kind, created)
            out = await api.registry.create(ctx, created)
            return _warned(respond(present(rd, out), 201), warnings)
    expected = patch_resource_version(doc)

    def mutate(old: dict[str, Any]) -> dict[str, Any]:
        new = apply_patch(old, doc, media, kind=rd.kind, api_version=rd.api_version,
                          manager=ctx.field_manager, force=force, now=now,
                          ignore_status=has_status, schema=patch_schema_of(rd))
        drop_unknown_fields(rd.api_version, rd.kind, new)  # what Go's decoder would drop
        return new

    out = await api.registry.mutate(ctx, mutate, expected_rv=expected)
    return _warned(respond(present(rd, out)), warnings)


async def _delete_options(request: web.Request, info: RequestInfo) -> dict[str, Any]:
    body = await read_body(request)
    options: dict[str, Any] = {}
    if body.strip():
        decoded = decode_body(body, request.headers.get("Content-Type"))
        options = decoded.obj
    if info.options.propagation_policy:
        options.setdefault("propagationPolicy", info.options.propagation_policy)
    policy = options.get("propagationPolicy")
    if policy is not None and options.get("orphanDependents") is not None:
        raise _invalid_options(info, Cause(
            "FieldValueInvalid", f"Invalid value: {json.dumps(policy)}: orphanDependents and "
            "deletionPropagation cannot be both set", "propagationPolicy"))
    if policy is not None and policy not in ("Foreground", "Background", "Orphan"):
        raise _invalid_options(info, Cause(
            "FieldValueNotSupported", f"Unsupported value: {json.dumps(policy)}: supported "
            'values: "Foreground", "Background", "Orphan", "nil"', "propagationPolicy"))
    grace = request.query.get("gracePeriodSeconds")
    if grace is not None:
        try:
            options.setdefault("gracePeriodSeconds", int(grace))
        except ValueError:
            raise BadRequest("gracePeriodSeconds must be an integer") from None
    return options


def _success(rd: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": meta.get("name", ""), "group": rd.group, "kind": rd.resource,
                        "uid": meta.get("uid", "")}}


async def delete(request: web.Request, api: APIState, ctx: WriteContext,
                 info: RequestInfo) -> web.Response:
    options = await _delete_options(request, info)
    obj, gone = await api.registry.delete(ctx, options)
    if not gone or ctx.rd.resource == "pods":
        return respond(present(ctx.rd, obj))
    return respond(_success(ctx.rd, obj))


async def delete_collection(request: web.Request, api: APIState, ctx: WriteContext,
                            info: RequestInfo) -> web.Response:
    options = await _delete_options(request, info)
    flt = filter_for(ctx.rd, info.options)
    items, meta = await api.reader.list(ctx.rd, ctx.namespace, info.options, flt)
    deleted = []
    for obj in items:
        one = copy.copy(ctx)
        one.name = obj["metadata"]["name"]
        one.namespace = obj["metadata"].get("namespace", "")
        try:
            out, _ = await api.registry.delete(one, options)
        except NotFound:
            continue
        deleted.append(present(ctx.rd, out))
    return respond({"kind": ctx.rd.list_kind, "apiVersion": ctx.rd.api_version,
                    "metadata": {"resourceVersion": meta.get("resourceVersion", "")},
                    "items": deleted})
