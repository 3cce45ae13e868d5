"""The ``paths`` section of a group-version OpenAPI document, one entry per catalog resource.

Each operation carries ``x-kubernetes-action`` and a single-object
``x-kubernetes-group-version-kind``. kubectl relies on two details: a PATCH operation whose GVK
matches the kind and that lists a ``fieldValidation`` query parameter (otherwise ``apply``
falls back to client-side validation against ``/openapi/v2``), and an
``application/strategic-merge-patch+json`` request body on it (otherwise client-side apply
computes a JSON merge patch). ``kubectl explain`` finds a resource's GVK from these paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from control.api.catalog import ResourceDef, Subresource, resources_in
from control.apiserver.openapi.naming import operation_group, ref, schema_name
from control.apiserver.openapi.schemas import (
    PATCH,
    STATUS,
    gvk,
    kind_schema_name,
    list_schema_name,
)

__all__ = ["PATCH_CONTENT_TYPES", "gv_paths", "gv_prefix", "resource_paths"]

Operation = dict[str, Any]

PATCH_CONTENT_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)

# Subresources answered with plain text rather than an object.
_TEXT_SUBRESOURCES = frozenset({"log"})


def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_}}


def _path_param(name: str, description: str) -> dict[str, Any]:
    schema = {"type": "string", "uniqueItems": True}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


_PRETTY = _query("pretty", "If 'true', the output is pretty-printed.")
_DRY_RUN = _query("dryRun", "If 'All', process the request fully but persist nothing.")
_FIELD_MANAGER = _query(
    "fieldManager", "Name of the actor making the change, recorded in managedFields."
)
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "How to treat unknown or duplicate fields in the body: Ignore, Warn or Strict (reject).",
)
_FORCE = _query("force", "Apply only: take ownership of fields other managers own.", "boolean")
_WRITE = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
_LIST = [
    _query("labelSelector", "Only return objects whose labels match this selector."),
    _query("fieldSelector", "Only return objects whose fields match this selector."),
    _query("limit", "Return at most this many objects; continue with the token.", "integer"),
    _query("continue", "The continue token of the previous page."),
    _query("resourceVersion", "Read at or after this resourceVersion (see resourceVersionMatch)."),
    _query("resourceVersionMatch", "How resourceVersion applies: Exact or NotOlderThan."),
    _query("watch", "Stream changes instead of returning a list.", "boolean"),
    _query("allowWatchBookmarks", "Allow BOOKMARK events in a watch.", "boolean"),
    _query("sendInitialEvents", "Start a watch with synthetic ADDED events.", "boolean"),
    _query("timeoutSeconds", "End a list or watch after this many seconds.", "integer"),
]
_DELETE = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "Seconds to wait before deleting; 0 deletes now.", "integer"),
    _query("propagationPolicy", "What happens to dependents: Orphan, Background or Foreground."),
    _query("orphanDependents", "Deprecated: use propagationPolicy.", "boolean"),
]
_NAMESPACE = _path_param("namespace", "The namespace of the objects.")
_STREAM_FLAGS = [
    _query("container", "The container to connect to; the only one when not given."),
    _query("stdin", "Redirect the standard input stream.", "boolean"),
    _query("stdout", "Redirect the standard output stream.", "boolean"),
    _query("stderr", "Redirect the standard error stream.", "boolean"),
    _query("tty", "Allocate a terminal; stderr then comes with stdout.", "boolean"),
]
# Subresources that upgrade or proxy the connection (kube's "connect" actions): no request
# body, a stream back, their own query parameters.
_CONNECT_QUERY: dict[str, list[dict[str, Any]]] = {
    "attach": _STREAM_FLAGS,
    "exec": [_query("command", "The command and its arguments, one parameter each."),
             *_STREAM_FLAGS],
    "portforward": [_query("ports", "The ports to forward (WebSocket clients open streams).")],
    "proxy": [_query("path", "The path on the node agent.")],
}

_ACTIONS = {  # verb in the catalog -> (HTTP method, x-kubernetes-action, operationId verb)
    "get": ("get", "get", "read"),
    "update": ("put", "put", "replace"),
    "patch": ("patch", "patch", "patch"),
    "delete": ("delete", "delete", "delete"),
    "create": ("post", "post", "create"),
}


def gv_prefix(group: str, version: str) -> str:
    """``/api/v1`` for the core group, ``/apis/<group>/<version>`` otherwise."""
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(schema: dict[str, Any], codes: Iterable[str] = ("200",)) -> dict[str, Any]:
    names = {"200": "OK", "201": "Created", "202": "Accepted"}
    return {code: {"description": names[code], "content": _json(schema)} for code in codes}


def _operation(
    *,
    action: str,
    op_id: str,
    target: tuple[str, str, str],
    params: list[dict[str, Any]],
    description: str,
) -> Operation:
    return {
        "description": description,
        "operationId": op_id,
        "parameters": params,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(*target),
    }


def _body_op(op: Operation, method: str, schema: dict[str, Any], *, text: bool) -> Operation:
    """Fill in request body, method-specific query parameters and responses."""
    if method == "patch":
        op["parameters"] += [*_WRITE, _FORCE]
        content = {t: {"schema": ref(PATCH)} for t in PATCH_CONTENT_TYPES}
        op["requestBody"] = {"required": True, "content": content}
        op["responses"] = _responses(schema, ("200", "201"))
    elif method in ("put", "post"):
        op["parameters"] += _WRITE
        op["requestBody"] = {"required": True, "content": _json(schema)}
        codes = ("200", "201", "202") if method == "post" else ("200", "201")
        op["responses"] = _responses(schema, codes)
    elif method == "delete":
        op["parameters"] += _DELETE
        op["requestBody"] = {"content": _json(ref(schema_name("meta.v1.DeleteOptions")))}
        op["responses"] = _responses(ref(STATUS), ("200", "202"))
    elif text:
        op["responses"] = {
            "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
        }
    else:
        op["responses"] = _responses(schema)
    return op


def _op(
    r: ResourceDef, action: str, op_id: str, params: list[dict[str, Any]], what: str
) -> Operation:
    """An operation on ``r`` itself (its GVK), with ``pretty`` after ``params``."""
    target = (r.group, r.version, r.kind)
    return _operation(
        action=action, op_id=op_id, target=target, params=[*params, _PRETTY], description=what
    )


class _Names(NamedTuple):
    collection: str  # /api/v1/namespaces/{namespace}/pods
    gv: str  # CoreV1
    scope: str  # Namespaced or empty
    base: list[dict[str, Any]]  # the namespace path parameter, if namespaced

    @property
    def stem(self) -> str:
        """operationId after the verb, before the kind: ``CoreV1Namespaced``."""
        return self.gv + self.scope


def _names(r: ResourceDef) -> _Names:
    scope = "/namespaces/{namespace}" if r.namespaced else ""
    return _Names(
        collection=f"{gv_prefix(r.group, r.version)}{scope}/{r.resource}",
        gv=operation_group(r.group, r.version),
        scope="Namespaced" if r.namespaced else "",
        base=[_NAMESPACE] if r.namespaced else [],
    )


def _collection_paths(r: ResourceDef) -> dict[str, dict[str, Operation]]:
    """The collection (list, create, deletecollection) and the all-namespaces list path."""
    n = _names(r)
    kind_ref = ref(kind_schema_name(r.group, r.version, r.kind))
    ops: dict[str, Operation] = {}
    paths = {n.collection: ops}
    if "list" in r.verbs:
        list_ref = ref(list_schema_name(r.group, r.version, r.kind))
        what = f"list or watch {r.kind}"
        ops["get"] = _op(r, "list", f"list{n.stem}{r.kind}", [*n.base, *_LIST], what)
        ops["get"]["responses"] = _responses(list_ref)
        if r.namespaced:
            op_id = f"list{n.gv}{r.kind}ForAllNamespaces"
            every = _op(r, "list", op_id, _LIST, f"list or watch {r.kind} in every namespace")
            every["responses"] = _responses(list_ref)
            paths[f"{gv_prefix(r.group, r.version)}/{r.resource}"] = {"get": every}
    if "create" in r.verbs:
        create = _op(r, "post", f"create{n.stem}{r.kind}", n.base, f"create a {r.kind}")
        ops["post"] = _body_op(create, "post", kind_ref, text=False)
    if "deletecollection" in r.verbs:
        op_id = f"delete{n.gv}Collection{n.scope}{r.kind}"
        purge = _op(r, "deletecollection", op_id, [*n.base, *_LIST], f"delete {r.kind} objects")
        ops["delete"] = _body_op(purge, "delete", kind_ref, text=False)
    return paths


def _subresource_ops(
    r: ResourceDef, sub: Subresource, params: list[dict[str, Any]], op_stem: str
) -> dict[str, Operation]:
    target = (sub.group if sub.group is not None else r.group, sub.version or r.version, sub.kind)
    suffix = sub.name[:1].upper() + sub.name[1:]
    ops: dict[str, Operation] = {}
    if sub.name in _CONNECT_QUERY:
        gv = operation_group(r.group, r.version)
        for verb in sub.verbs:
            method = _ACTIONS[verb][0]
            op = _operation(
                action="connect",
                op_id=f"connect{gv}{method.capitalize()}{op_stem[len(gv):]}{suffix}",
                target=target,
                params=[*params, *_CONNECT_QUERY[sub.name]],
                description=f"connect {method.upper()} requests to {sub.name} of {r.kind}",
            )
            op["responses"] = _body_op({}, "get", {}, text=True)["responses"]
            ops[method] = op
        return ops
    schema = ref(kind_schema_name(*target))
    for verb in sub.verbs:
        if verb not in _ACTIONS:
            continue
        method, action, op_verb = _ACTIONS[verb]
        op = _operation(
            action=action,
            op_id=f"{op_verb}{op_stem}{suffix}",
            target=target,
            params=[*params, _PRETTY],
            description=f"{op_verb} {sub.name} of the specified {r.kind}",
        )
        ops[method] = _body_op(op, method, schema, text=sub.name in _TEXT_SUBRESOURCES)
    return ops


def _item_paths(r: ResourceDef) -> dict[str, dict[str, Operation]]:
    """The item path (get, replace, patch, delete) and one path per subresource."""
    n = _names(r)
    stem = n.stem + r.kind
    kind_ref = ref(kind_schema_name(r.group, r.version, r.kind))
    params = [_path_param("name", f"The name of the {r.kind}."), *n.base]
    item_path = f"{n.collection}/{{name}}"
    ops: dict[str, Operation] = {}
    for verb in ("get", "update", "patch", "delete"):
        if verb in r.verbs:
            method, action, op_verb = _ACTIONS[verb]
            op = _op(r, action, f"{op_verb}{stem}", params, f"{op_verb} the specified {r.kind}")
            ops[method] = _body_op(op, method, kind_ref, text=False)
    paths = {item_path: ops}
    for sub in r.subresources:
        paths[f"{item_path}/{sub.name}"] = _subresource_ops(r, sub, params, stem)
    return paths


def resource_paths(r: ResourceDef) -> dict[str, dict[str, Operation]]:
    """The paths of one resource (for resources served beside the catalog's: custom ones)."""
    paths = {**_collection_paths(r), **_item_paths(r)}
    return {p: ops for p, ops in paths.items() if ops}


def gv_paths(group: str, version: str) -> dict[str, dict[str, Operation]]:
    """Every path of the group version's resources, sorted by path."""
    paths: dict[str, dict[str, Operation]] = {}
    for r in resources_in(group, version):
        paths.update(_collection_paths(r))
        if not r.virtual:  # computed answers: nothing to read back by name
            paths.update(_item_paths(r))
    return dict(sorted((p, ops) for p, ops in paths.items() if ops))
