"""Request bodies in, response bodies out: the apiserver's decode stage and JSON encoding.

Bodies are JSON (also when no Content-Type is sent, as the Python client does), YAML, or
Kubernetes protobuf (kubectl's typed clients).  Duplicate JSON keys and, under
``fieldValidation=Strict``, fields the schema does not know are 400 BadRequest with
apiserver's ``strict decoding error`` text; under ``Warn`` they become ``Warning`` headers,
and either way they are dropped, never stored (Go's decoder has nowhere to put them).
A value of the wrong JSON type for its field (``replicas: "three"``, ``data: "x"``) is 400
``... cannot be handled as a Deployment``, as Go's decoder refuses it, so nothing a typed
client cannot read back is ever stored.  Nothing here touches storage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import yaml
from aiohttp import web

from control.api.errors import APIError, BadRequest, TooLarge, UnsupportedMediaType
from control.api.kinds.fields import Field
from control.api.kinds.schema import MESSAGES, SPECIAL_FORMS, message_for
from control.apiserver.protobuf import PROTOBUF_CONTENT_TYPE, ProtobufError, decode_request_full
from control.apiserver.timestamps import normalize_times

__all__ = [
    "MAX_BODY",
    "PATCH_TYPES",
    "Decoded",
    "decode_body",
    "drop_unknown_fields",
    "dumps",
    "media_type",
    "read_body",
    "respond",
    "type_error",
    "unknown_fields",
]

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's default request body limit
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_BODY_TYPES = ("application/json", "application/yaml", PROTOBUF_CONTENT_TYPE)


def media_type(header: str | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json``; missing → JSON."""
    if not header:
        return "application/json"
    return header.split(";", 1)[0].strip().lower()


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The whole body, or 413 once it passes ``limit`` bytes (read no further)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the request body is too large: {request.content_length} bytes, "
                       f"limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is too large: limit is {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


class _Duplicate(ValueError):
    pass


class Decoded:
    """A decoded object and what strict validation must know about it."""

    def __init__(self, obj: Any, unknown: list[str], duplicates: list[str],
                 gvk: tuple[str, str] | None = None) -> None:
        self.obj = obj
        self.unknown = unknown
        self.duplicates = duplicates
        self.gvk = gvk  # (apiVersion, kind) whose schema ``unknown`` was found with

    def drop_unknown(self) -> None:
        """Remove the unknown fields from ``obj`` (what Go's decoder leaves out)."""
        if self.unknown and self.gvk is not None and isinstance(self.obj, dict):
            drop_unknown_fields(*self.gvk, self.obj)


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")  # NaN, Infinity: not JSON, Go refuses them


#: How deeply a request body may nest objects and arrays.  Kubernetes' own objects stay
#: under ~20 levels; Go's decoder stops at 10,000, Python's recursion much earlier, so a
#: deeper body is refused here (400) before any recursive code sees it.
MAX_DEPTH = 100


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests deeper than :data:`MAX_DEPTH` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(v, dict):
            stack.extend((c, depth + 1) for c in v.values())
        elif isinstance(v, list):
            stack.extend((c, depth + 1) for c in v)
    return False


def _check_depth(value: Any, body: bytes | None = None) -> Any:
    # a body with fewer brackets than the limit cannot nest deeper (counting is C-fast)
    if body is not None and body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return value
    if _too_deep(value):
        raise BadRequest(f"the request body nests objects and arrays more than {MAX_DEPTH} "
                         "levels deep")
    return value


def parse_json(body: bytes) -> Decoded:
    """JSON text as a value; duplicate keys recorded (strict validation refuses them); 400
    for nesting deeper than :data:`MAX_DEPTH`."""
    try:
        return Decoded(_check_depth(json.loads(body, object_pairs_hook=_no_duplicates,
                                               parse_constant=_no_constants), body), [], [])
    except _Duplicate as d:
        obj = _check_depth(json.loads(body, parse_constant=_no_constants), body)
        return Decoded(obj, [], [f'duplicate field "{d.args[0]}"'])
    except RecursionError:
        raise BadRequest(f"the request body nests objects and arrays more than {MAX_DEPTH} "
                         "levels deep") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"error decoding JSON: {e}") from None


class _YAMLLoader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: ``2020-01-01`` stays a string, as in
    sigs.k8s.io/yaml's YAML-to-JSON conversion (a ``date`` is no JSON value)."""


_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int | float | bool) and _json_value(v)
                   for k, v in value.items())
    return False


def parse_yaml(body: bytes) -> Any:
    """One YAML document as a JSON value; anything YAML can say that JSON cannot (explicit
    ``!!binary`` or ``!!timestamp`` tags, complex keys, .nan) is a 400."""
    try:
        docs = list(yaml.load_all(body, Loader=_YAMLLoader))  # a SafeLoader
    except RecursionError:
        raise BadRequest(f"the request body nests objects and arrays more than {MAX_DEPTH} "
                         "levels deep") from None
    except (yaml.YAMLError, TypeError, ValueError) as e:
        raise BadRequest(f"error converting YAML to JSON: {e}") from None
    if len(docs) != 1:
        raise BadRequest("the request body must hold exactly one YAML document")
    _check_depth(docs[0])
    if not _json_value(docs[0]):
        raise BadRequest("error converting YAML to JSON: the document holds values JSON "
                         "cannot represent (binary, timestamps, sets or non-scalar keys)")
    return docs[0]


def decode_body(body: bytes, content_type: str | None, *, api_version: str = "",
                kind: str = "") -> Decoded:
    """An object from a create/update body; 415 for types other than JSON, YAML, protobuf.

    ``api_version``/``kind`` (the URL's resource) stand in for a body that leaves them out,
    so unknown fields and wrong types are found in such bodies too."""
    mt = media_type(content_type)
    if mt in ("application/json", "*/*", "text/plain"):
        d = parse_json(body)
    elif mt in ("application/yaml", "application/x-yaml", "text/yaml"):
        d = Decoded(parse_yaml(body), [], [])
    elif mt == PROTOBUF_CONTENT_TYPE:
        try:
            full = decode_request_full(body, max_bytes=MAX_BODY)
        except ProtobufError as e:
            if e.unsupported_kind:
                raise APIError(415, "UnsupportedMediaType", str(e)) from None
            raise BadRequest(f"the body of the request was in an unknown format: {e}") from None
        return Decoded(full.obj, list(full.unknown_fields), [])
    else:
        raise UnsupportedMediaType(_BODY_TYPES)
    if not isinstance(d.obj, dict):
        raise BadRequest("the request body must be a JSON object")
    body_gv, body_kind = d.obj.get("apiVersion"), d.obj.get("kind")
    gv = body_gv if isinstance(body_gv, str) and body_gv else api_version
    k = body_kind if isinstance(body_kind, str) and body_kind else kind
    if gv and k:
        d.gvk = (gv, k)
        d.unknown = unknown_fields(gv, k, d.obj)
        problem = type_error(gv, k, d.obj)
        if problem:
            raise BadRequest(f'{k} in version "{gv.rpartition("/")[2]}" cannot be handled as '
                             f"a {k}: {problem}")
        try:
            normalize_times(gv, k, d.obj)
        except BadRequest as e:
            raise BadRequest(f'{k} in version "{gv.rpartition("/")[2]}" cannot be handled as '
                             f"a {k}: {e.message}") from None
    return d


# --- unknown fields (strict validation), from the protobuf field tables ----------------------

def _by_name(message: str) -> dict[str, Field]:
    out: dict[str, Field] = {}
    for f in MESSAGES.get(message, {}).values():
        if f.inline and isinstance(f.ref, str):
            out.update(_by_name(f.ref))
        else:
            out[f.name] = f
    return out


_NAMES: dict[str, dict[str, Field]] = {}


def _walk(value: Any, message: str, path: str, out: list[str], drop: bool = False) -> None:
    if message in SPECIAL_FORMS or not isinstance(value, dict):
        return
    names = _NAMES.get(message)
    if names is None:
        names = _NAMES[message] = _by_name(message)
    for key, v in list(value.items()):
        f = names.get(key)
        where = f"{path}.{key}" if path else key
        if f is None:
            if not (path == "" and key in ("apiVersion", "kind")):
                out.append(where)
                if drop:
                    del value[key]
            continue
        if f.type == "message" and isinstance(f.ref, str):
            items = v if f.repeated and isinstance(v, list) else [v]
            for i, item in enumerate(items):
                _walk(item, f.ref, f"{where}[{i}]" if f.repeated else where, out, drop)
        elif f.type == "map" and isinstance(f.ref, tuple) and f.ref[1] in MESSAGES \
                and isinstance(v, Mapping):
            for k, item in v.items():
                _walk(item, f.ref[1], f"{where}.{k}", out, drop)


def drop_unknown_fields(api_version: str, kind: str, obj: dict[str, Any]) -> None:
    """Remove (in place) what :func:`unknown_fields` reports: a field Go's decoder would not
    keep is never stored (``fieldValidation`` Warn and Ignore)."""
    message = message_for(api_version, kind)
    if message is not None:
        _walk(obj, message, "", [], drop=True)


def unknown_fields(api_version: str, kind: str, obj: dict[str, Any]) -> list[str]:
    """Paths of fields in ``obj`` that its kind's schema does not declare (only for kinds
    with a field table; others are accepted as they are)."""
    message = message_for(api_version, kind)
    if message is None:
        return []
    out: list[str] = []
    _walk(obj, message, "", out)
    return out


_INTS = frozenset({"int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
                   "fixed64", "sfixed32", "sfixed64"})


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _go_type(type_: str, ref: Any, repeated: bool = False) -> str:
    if repeated:
        return "[]" + _go_type(type_, ref)
    if type_ == "map" and isinstance(ref, tuple):
        value = ref[1]
        inner = ".".join(value.split(".")[-2:]) if value in MESSAGES else (
            "[]uint8" if value == "bytes" else value)
        return f"map[{ref[0]}]{inner}"
    if type_ == "message" and isinstance(ref, str):
        return ".".join(ref.split(".")[-2:])
    return "[]uint8" if type_ == "bytes" else type_


def _scalar_ok(type_: str, v: Any) -> bool:
    if type_ == "bool":
        return isinstance(v, bool)
    if isinstance(v, bool):
        return False
    if type_ in _INTS:
        return isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    if type_ in ("float", "double"):
        return isinstance(v, int | float)
    return isinstance(v, str)  # string, bytes (base64)


def _special_ok(form: str, v: Any) -> bool:
    if form in ("time", "micro_time"):
        return isinstance(v, str)
    if form == "int_or_string":
        return isinstance(v, str | int) and not isinstance(v, bool)
    if form == "quantity":
        return isinstance(v, str | int | float) and not isinstance(v, bool)
    if form == "string_list":
        return isinstance(v, list) and all(isinstance(i, str) for i in v)
    return True  # raw JSON: anything


def _value_error(v: Any, type_: str, ref: Any, where: str, owner: str) -> str | None:
    """Why ``v`` (not a list element container) cannot be a ``type_``/``ref`` value."""
    if v is None:
        return None  # Go decodes null into the zero value
    if type_ == "message" and isinstance(ref, str):
        if ref in SPECIAL_FORMS:
            ok = _special_ok(SPECIAL_FORMS[ref], v)
        elif isinstance(v, dict):
            return _message_error(v, ref, where)
        else:
            ok = False
    elif type_ == "map" and isinstance(ref, tuple):
        if not isinstance(v, dict):
            ok = False
        else:
            for key, item in v.items():
                inner = ("message", ref[1]) if ref[1] in MESSAGES else (ref[1], None)
                err = _value_error(item, inner[0], inner[1], f"{where}.{key}", owner)
                if err:
                    return err
            return None
    else:
        ok = _scalar_ok(type_, v)
    if ok:
        return None
    return (f"json: cannot unmarshal {_json_type(v)} into Go struct field {owner}.{where} "
            f"of type {_go_type(type_, ref)}")


def _message_error(value: dict[str, Any], message: str, path: str) -> str | None:
    names = _NAMES.get(message)
    if names is None:
        names = _NAMES[message] = _by_name(message)
    owner = message.rsplit(".", 1)[-1]
    for key, v in value.items():
        f = names.get(key)
        if f is None or v is None:
            continue  # unknown fields are strict validation's business
        where = f"{path}.{key}" if path else key
        if f.repeated and f.type != "map":
            if not isinstance(v, list):
                return (f"json: cannot unmarshal {_json_type(v)} into Go struct field "
                        f"{owner}.{where} of type {_go_type(f.type, f.ref, True)}")
            for item in v:
                err = _value_error(item, f.type, f.ref, where, owner)
                if err:
                    return err
            continue
        err = _value_error(v, f.type, f.ref, where, owner)
        if err:
            return err
    return None


def type_error(api_version: str, kind: str, obj: dict[str, Any]) -> str | None:
    """Go's decoding error for the first value of the wrong JSON type in ``obj`` (``None``
    if all fit, or the kind has no field table)."""
    message = message_for(api_version, kind)
    if message is None:
        return None
    return _message_error(obj, message, "")


def strict_problems(d: Decoded) -> list[str]:
    return d.duplicates + [f'unknown field "{p}"' for p in d.unknown]


# --- responses ------------------------------------------------------------------------------

def dumps(obj: Any) -> bytes:
    """Compact JSON in UTF-8; a lone surrogate (text that came from bytes that were not
    UTF-8) is written as ``?`` rather than failing the response."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def respond(obj: Any, status: int = 200, *, headers: Mapping[str, str] | None = None,
            content_type: str = "application/json") -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=content_type,
                        headers=headers)
