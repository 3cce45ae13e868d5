"""Strategic-merge-patch metadata for the OpenAPI schemas, derived from the patching tables.

``control.apiserver.patching.schema`` keys strategies by kind and field path (``spec.template.spec.
containers``); OpenAPI carries them as ``x-kubernetes-patch-strategy`` / ``-merge-key`` on the
property of the message that declares the field (``core.v1.PodSpec.containers``), which is
where kubectl's client-side apply looks them up. This module walks every kind's paths through
the message tables to move each strategy onto its ``(message, field)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from control.apiserver.openapi.tables import flattened, kinds
from control.apiserver.patching.schema import KIND_SCHEMAS, FieldStrategy, schema_for

__all__ = ["PATCH_MERGE_KEY", "PATCH_STRATEGY", "build_patch_extensions", "patch_extensions"]

PATCH_STRATEGY = "x-kubernetes-patch-strategy"
PATCH_MERGE_KEY = "x-kubernetes-patch-merge-key"

FieldKey = tuple[str, str]  # (declaring message, JSON field name)


def _extensions(strategy: FieldStrategy) -> dict[str, str]:
    """The OpenAPI extensions for one strategy; empty for an atomic field."""
    strategies = (["merge"] if strategy.merge else []) + (
        ["retainKeys"] if strategy.retain_keys else []
    )
    extensions: dict[str, str] = {}
    if strategies:
        extensions[PATCH_STRATEGY] = ",".join(strategies)
    if strategy.merge_key:
        extensions[PATCH_MERGE_KEY] = strategy.merge_key
    return extensions


def _resolve(message: str, path: tuple[str, ...]) -> FieldKey | None:
    """The ``(message, field)`` that ``path`` (from the root of ``message``) ends at, or None."""
    current = message
    for depth, segment in enumerate(path):
        match = next(((o, f) for o, f in flattened(current) if f.name == segment), None)
        if match is None:
            return None
        owner, field = match
        if depth == len(path) - 1:
            return owner, field.name
        if field.type != "message" or not isinstance(field.ref, str):
            return None
        current = field.ref
    return None


def build_patch_extensions() -> tuple[dict[FieldKey, dict[str, str]], list[str]]:
    """Extensions per ``(message, field)``, and the table paths that named no field.

    Only kinds listed in ``KIND_SCHEMAS`` report unresolved paths; the default (metadata-only)
    schema applies to every kind and is skipped where a kind has no ``metadata``.
    Raises ValueError if two kinds give the same message field different strategies: the
    OpenAPI schema has one property per field, so the tables must agree.
    """
    found: dict[FieldKey, dict[str, str]] = {}
    unresolved: list[str] = []
    for (api_version, kind), message in sorted(kinds().items()):
        for path, strategy in sorted(schema_for(kind).fields.items()):
            key = _resolve(message, path)
            if key is None:
                if kind in KIND_SCHEMAS:
                    unresolved.append(f"{api_version} {kind}: {'.'.join(path)}")
                continue
            extensions = _extensions(strategy)
            if not extensions:
                continue
            if found.setdefault(key, extensions) != extensions:
                raise ValueError(f"conflicting patch strategies for {key[0]}.{key[1]}")
    return found, unresolved


@functools.cache
def patch_extensions() -> Mapping[FieldKey, dict[str, str]]:
    """Cached :func:`build_patch_extensions` extensions (callers must not mutate them)."""
    return build_patch_extensions()[0]
