"""Request bodies in, response bodies out: the apiserver's decode stage and JSON encoding.

Bodies are JSON (also when no Content-Type is sent, as the Python client does), YAML, or
Kubernetes protobuf (kubectl's typed clients).  Duplicate JSON keys and, under
``fieldValidation=Strict``, fields the schema does not know are 400 BadRequest with
apiserver's ``strict decoding error`` text; under ``Warn`` they become ``Warning`` headers.
Nothing here touches storage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from aiohttp import web

from control.errors import APIError, BadRequest, TooLarge, UnsupportedMediaType
from control.protobuf import PROTOBUF_CONTENT_TYPE, ProtobufError, decode_request_full
from control.protobuf.fields import Field
from control.protobuf.schema import MESSAGES, SPECIAL_FORMS, message_for

__all__ = [
    "MAX_BODY",
    "PATCH_TYPES",
    "Decoded",
    "decode_body",
    "dumps",
    "media_type",
    "read_body",
    "respond",
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

    def __init__(self, obj: Any, unknown: list[str], duplicates: list[str]) -> None:
        self.obj = obj
        self.unknown = unknown
        self.duplicates = duplicates


def parse_json(body: bytes) -> Decoded:
    """JSON text as a value; duplicate keys recorded (strict validation refuses them)."""
    try:
        return Decoded(json.loads(body, object_pairs_hook=_no_duplicates), [], [])
    except _Duplicate as d:
        obj = json.loads(body)
        return Decoded(obj, [], [f'duplicate field "{d.args[0]}"'])
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"error decoding JSON: {e}") from None


def parse_yaml(body: bytes) -> Any:
    try:
        docs = list(yaml.safe_load_all(body))
    except yaml.YAMLError as e:
        raise BadRequest(f"error converting YAML to JSON: {e}") from None
    if len(docs) != 1:
        raise BadRequest("the request body must hold exactly one YAML document")
    return docs[0]


def decode_body(body: bytes, content_type: str) -> Decoded:
    """An object from a create/update body; 415 for types other than JSON, YAML, protobuf."""
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
    if isinstance(d.obj.get("apiVersion"), str) and isinstance(d.obj.get("kind"), str):
        d.unknown = unknown_fields(d.obj["apiVersion"], d.obj["kind"], d.obj)
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


def _walk(value: Any, message: str, path: str, out: list[str]) -> None:
    if message in SPECIAL_FORMS or not isinstance(value, dict):
        return
    names = _NAMES.get(message)
    if names is None:
        names = _NAMES[message] = _by_name(message)
    for key, v in value.items():
        f = names.get(key)
        where = f"{path}.{key}" if path else key
        if f is None:
            if not (path == "" and key in ("apiVersion", "kind")):
                out.append(where)
            continue
        if f.type == "message" and isinstance(f.ref, str):
            items = v if f.repeated and isinstance(v, list) else [v]
            for i, item in enumerate(items):
                _walk(item, f.ref, f"{where}[{i}]" if f.repeated else where, out)
        elif f.type == "map" and isinstance(f.ref, tuple) and f.ref[1] in MESSAGES:
            if isinstance(v, Mapping):
                for k, item in v.items():
                    _walk(item, f.ref[1], f"{where}.{k}", out)


def unknown_fields(api_version: str, kind: str, obj: dict[str, Any]) -> list[str]:
    """Paths of fields in ``obj`` that its kind's schema does not declare (only for kinds
    with a field table; others are accepted as they are)."""
    message = message_for(api_version, kind)
    if message is None:
        return []
    out: list[str] = []
    _walk(obj, message, "", out)
    return out


def strict_problems(d: Decoded) -> list[str]:
    return d.duplicates + [f'unknown field "{p}"' for p in d.unknown]


# --- responses ------------------------------------------------------------------------------

def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def respond(obj: Any, status: int = 200, *, headers: Mapping[str, str] | None = None,
            content_type: str = "application/json") -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=content_type,
                        headers=headers)
