"""System-owned object metadata: what the registry sets on create and carries over on update.

Clients may not set uid, creationTimestamp, generation, deletionTimestamp or managedFields
(kubectl's protobuf bodies even send zero values for them); the registry computes them here.
The non-deterministic inputs (time, uid, random name suffix) come from one :class:`Clock`-like
:class:`Inputs` so tests can fix them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Inputs", "carry_over", "now_rfc3339", "prepare_create_meta"]

# apiserver's generateName alphabet: no vowels (no words), no confusable characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
           "deletionGracePeriodSeconds", "managedFields", "selfLink", "resourceVersion")


def now_rfc3339(now: dt.datetime | None = None) -> str:
    t = now or dt.datetime.now(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


@dataclass(frozen=True)
class Inputs:
    """Where the registry's non-deterministic values come from."""

    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    uid: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    suffix: Callable[[], str] = field(default=_suffix)

    def timestamp(self) -> str:
        return now_rfc3339(self.now())


def prepare_create_meta(obj: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    """Drop client-set system fields, resolve generateName, set uid and creationTimestamp.
    Returns the metadata dict (now owned by ``obj``)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    for k in _SYSTEM:
        meta.pop(k, None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = str(meta["generateName"]) + inputs.suffix()
    meta["uid"] = inputs.uid()
    meta["creationTimestamp"] = inputs.timestamp()
    return meta


def carry_over(new: dict[str, Any], old: dict[str, Any]) -> None:
    """On update: the system fields come from the stored object, whatever the client sent
    (generation is the strategy's to bump; managedFields are recomputed afterwards)."""
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        meta = new["metadata"] = {}
    old_meta = old.get("metadata", {})
    for k in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
              "deletionGracePeriodSeconds", "managedFields"):
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    meta.pop("selfLink", None)
