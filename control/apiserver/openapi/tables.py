"""The type universe the OpenAPI builder reads: protobuf field tables plus OpenAPI-only extras.

One place answers "which fields does message M have" and "which message is kind K", so the
schema and patch-metadata builders agree. The protobuf tables win over
:mod:`control.apiserver.openapi.extra_types` wherever both define a name.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from control.api.kinds.fields import Field
from control.api.kinds.schema import KINDS, MESSAGES
from control.apiserver.openapi.extra_types import EXTRA_KINDS, EXTRA_MESSAGES

__all__ = ["fields_of", "flattened", "kind_gvks", "kinds", "message_names", "message_of_kind"]


@functools.cache
def _messages() -> Mapping[str, tuple[Field, ...]]:
    merged: dict[str, tuple[Field, ...]] = dict(EXTRA_MESSAGES)
    for name, table in MESSAGES.items():
        merged[name] = tuple(table[number] for number in sorted(table))
    return merged


@functools.cache
def kinds() -> Mapping[tuple[str, str], str]:
    """Every top-level ``(apiVersion, kind)`` we can describe -> its message name."""
    return {**EXTRA_KINDS, **KINDS}


def message_names() -> list[str]:
    """Every message name, sorted."""
    return sorted(_messages())


def fields_of(message: str) -> tuple[Field, ...] | None:
    """The fields of ``message`` in table order (inline fields unexpanded), or None if unknown."""
    return _messages().get(message)


def message_of_kind(api_version: str, kind: str) -> str | None:
    """The message describing top-level ``kind`` in ``api_version``, or None."""
    return kinds().get((api_version, kind))


@functools.cache
def flattened(message: str) -> tuple[tuple[str, Field], ...]:
    """The JSON-visible fields of ``message`` as ``(owning message, field)`` pairs.

    Inline (Go-embedded) fields are replaced by the fields of the message they embed, as the
    JSON encoding does; the owner names the message whose table declares each field, which is
    where per-field metadata (patch strategies, descriptions) is keyed.
    """
    result: list[tuple[str, Field]] = []
    for field in fields_of(message) or ():
        if field.inline and isinstance(field.ref, str):
            result.extend(flattened(field.ref))
        else:
            result.append((message, field))
    return tuple(result)


@functools.cache
def _gvks_by_message() -> Mapping[str, tuple[tuple[str, str, str], ...]]:
    found: dict[str, set[tuple[str, str, str]]] = {}
    for (api_version, kind), message in kinds().items():
        group, _, version = api_version.rpartition("/")
        found.setdefault(message, set()).add((group, version, kind))
    return {message: tuple(sorted(gvks)) for message, gvks in found.items()}


def kind_gvks(message: str) -> tuple[tuple[str, str, str], ...]:
    """Every ``(group, version, kind)`` whose objects ``message`` describes, sorted; () if none."""
    return _gvks_by_message().get(message, ())
