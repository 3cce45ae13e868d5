"""The ``/openapi/v3`` documents, built from the resource catalog and the message tables.

The apiserver's handlers serve :func:`openapi_root` at ``GET /openapi/v3`` and
:func:`openapi_document` at ``GET /openapi/v3/<path>``; the root points at each document with
a ``?hash=`` of its content (:func:`document_hash`), which clients use as a cache key. Everything
here is a pure function of static tables, so each document is built once per process and the
same object is returned on every call: callers must treat it as read-only.

A document holds, for every resource of its group version, the collection and item paths with
their operations (see :mod:`control.apiserver.openapi.paths`), and the closure of the component schemas
those operations reference (see :mod:`control.apiserver.openapi.schemas`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from control.api.catalog import group_versions
from control.apiserver.openapi.paths import gv_paths, gv_prefix
from control.apiserver.openapi.schemas import iter_refs, schema_closure

__all__ = ["KUBERNETES_VERSION", "document_hash", "openapi_document", "openapi_root"]

#: The Kubernetes version the documents claim to describe (``info.version``).
KUBERNETES_VERSION = "v1.37.0"


@functools.cache
def _documents_by_path() -> dict[str, tuple[str, str]]:
    """``"api/v1"`` / ``"apis/apps/v1"`` -> (group, version), for every served group version."""
    return {gv_prefix(g, v).lstrip("/"): (g, v) for g, v in group_versions()}


@functools.cache
def _build(path: str) -> dict[str, Any]:
    group, version = _documents_by_path()[path]
    paths = gv_paths(group, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schema_closure(iter_refs(paths))},
    }


def _normalize(path: str) -> str:
    return path.strip("/")


def openapi_document(path: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group version, or None if ``path`` names none.

    ``path`` is the part after ``/openapi/v3/``: ``"api/v1"`` or ``"apis/apps/v1"`` (surrounding
    slashes are ignored). The returned dict is shared and cached: do not mutate it.
    """
    path = _normalize(path)
    if path not in _documents_by_path():
        return None
    return _build(path)


@functools.cache
def _hash(path: str) -> str:
    canonical = json.dumps(_build(path), sort_keys=True, separators=(",", ":"))
    return hashlib.sha512(canonical.encode()).hexdigest().upper()


def document_hash(path: str) -> str:
    """A stable hex digest of the document at ``path`` (its canonical JSON); cached.

    Raises KeyError if ``path`` names no document.
    """
    path = _normalize(path)
    if path not in _documents_by_path():
        raise KeyError(path)
    return _hash(path)


def openapi_root() -> dict[str, Any]:
    """The ``GET /openapi/v3`` discovery document: every group version's URL with its hash."""
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={document_hash(path)}"}
            for path in _documents_by_path()
        }
    }
