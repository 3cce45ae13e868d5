"""Request info: the first stage of the apiserver pipeline, before authentication.

``parse_request_info`` turns (method, path, query) into what authorization and the handlers
need: whether the request names an API resource, the Kubernetes verb (get/list/watch/create/
update/patch/delete/deletecollection, or the lowercase HTTP method for non-resource paths),
group, version, namespace, resource, subresource and name, plus the query options the list,
watch, write and delete handlers read. Pure and total: it never raises; query values that do
not parse are reported in ``QueryOptions.errors`` for the handler to answer 400 with.

Path rules follow apiserver ``pkg/endpoints/request/requestinfo.go``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from control.api.fieldselectors import parse_field_selector
from control.api.selectors import SelectorError

__all__ = ["QueryOptions", "RequestInfo", "parse_query_options", "parse_request_info"]

_API_PREFIXES = ("api", "apis")
_GROUPLESS_PREFIXES = ("api",)
_SPECIAL_VERBS = ("proxy", "watch")  # legacy /api/v1/watch/... and /api/v1/proxy/...
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True)
class QueryOptions:
    """Query parameters of list/watch/get/write/delete requests, decoded like Kubernetes'
    ParameterCodec: booleans are true unless "0" or "false"; "" means "not given" for strings.

    ``errors`` holds one "name: problem" entry per value that could not be decoded; the
    handler answers 400 BadRequest when it is non-empty.
    """

    watch: bool = False
    label_selector: str = ""
    field_selector: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    limit: int = 0
    continue_token: str = ""
    timeout_seconds: int | None = None
    allow_watch_bookmarks: bool = False
    send_initial_events: bool | None = None
    propagation_policy: str = ""
    dry_run: tuple[str, ...] = ()
    field_manager: str = ""
    force: bool = False
    field_validation: str = ""
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestInfo:
    """What a request addresses. For non-resource requests only ``path`` and ``verb`` (the
    lowercase HTTP method) are set. ``namespace`` is the namespace a request is scoped to; for
    ``/api/v1/namespaces/{ns}`` it is ``ns`` as well as ``name`` (as in Kubernetes, so a
    RoleBinding in ``ns`` can grant reading that namespace object).

    For list/watch, ``name`` is taken from ``fieldSelector=metadata.name=X`` so that
    ``resourceNames`` can authorize it; ``name_from_selector`` records that it did.
    """

    path: str
    verb: str
    is_resource_request: bool = False
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()
    name_from_selector: bool = False
    options: QueryOptions = field(default_factory=QueryOptions)


#: Query parameters, each name to all its values in order (``parse_qs`` shape; for aiohttp:
#: ``{k: request.query.getall(k) for k in request.query}``). A plain str value is one value.
Query = Mapping[str, Sequence[str]]


def _all(query: Query, key: str) -> tuple[str, ...]:
    values = query.get(key) or ()
    # a plain str here would be split into characters: accept Mapping[str, str] too
    return (values,) if isinstance(values, str) else tuple(values)


def _first(query: Query, key: str) -> str | None:
    values = _all(query, key)
    return values[0] if values else None


def _bool(query: Query, key: str) -> bool | None:
    value = _first(query, key)
    if value is None:
        return None
    return not (value == "0" or value.lower() == "false")


def _int(query: Query, key: str, errors: list[str]) -> int | None:
    value = _first(query, key)
    if value is None or value == "":
        return None
    try:
        return int(value, 10)
    except ValueError:
        errors.append(f'{key}: strconv.ParseInt: parsing "{value}": invalid syntax')
        return None


def parse_query_options(query: Query) -> QueryOptions:
    """Decode the query parameters this apiserver understands; unknown ones are ignored."""
    errors: list[str] = []
    limit = _int(query, "limit", errors)
    timeout = _int(query, "timeoutSeconds", errors)

    def text(key: str) -> str:
        return _first(query, key) or ""

    return QueryOptions(
        watch=bool(_bool(query, "watch")),
        label_selector=text("labelSelector"),
        field_selector=text("fieldSelector"),
        resource_version=text("resourceVersion"),
        resource_version_match=text("resourceVersionMatch"),
        limit=limit or 0,
        continue_token=text("continue"),
        timeout_seconds=timeout,
        allow_watch_bookmarks=bool(_bool(query, "allowWatchBookmarks")),
        send_initial_events=_bool(query, "sendInitialEvents"),
        propagation_policy=text("propagationPolicy"),
        dry_run=_all(query, "dryRun"),
        field_manager=text("fieldManager"),
        force=bool(_bool(query, "force")),
        field_validation=text("fieldValidation"),
        errors=tuple(errors),
    )


def _split_path(path: str) -> list[str]:
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _valid_path_segment(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "%" not in name


def _selected_name(options: QueryOptions) -> str:
    """The name pinned by ``fieldSelector=metadata.name=X``, or "" (also when unparsable)."""
    try:
        selector = parse_field_selector(options.field_selector)
    except SelectorError:
        return ""
    name = selector.requires_exact_match("metadata.name") or ""
    return name if _valid_path_segment(name) else ""


def parse_request_info(method: str, path: str, query: Query) -> RequestInfo:
    """Classify a request. Never raises.

    Resource requests are ``/api/{v}/...`` and ``/apis/{group}/{v}/...`` with at least one
    part after the version; everything else (``/api``, ``/apis/apps``, ``/apis/apps/v1``,
    ``/version``, ``/openapi/v3/...``, ``/healthz``, ``/metrics``) is non-resource.
    """
    options = parse_query_options(query)
    base = RequestInfo(path=path, verb=method.lower(), options=options)
    parts = _split_path(path)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return base
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in _GROUPLESS_PREFIXES:
        if len(parts) < 3:
            return base
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if parts and parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0] if parts else ""
    name = parts[1] if len(parts) > 1 else ""
    subresource = parts[2] if len(parts) > 2 and verb != "proxy" else ""
    from_selector = False
    if not name and verb == "get":
        verb = "watch" if options.watch else "list"
        name = _selected_name(options)
        from_selector = bool(name)
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        path=path,
        verb=verb,
        is_resource_request=True,
        api_prefix=prefix,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
        parts=tuple(parts),
        name_from_selector=from_selector,
        options=options,
    )
