"""Own writes not yet seen: the resourceVersions a controller wrote for an owner's key, so
that it decides again only from caches that include them.

Expectations (:mod:`.expectations`) count creations and deletions; a controller that *updates*
objects it reasons about together (a Deployment scaling several ReplicaSets within
``maxSurge``/``maxUnavailable``) needs more: a resourceVersion guard protects each write
against a stale copy of *that* object, not a decision that also read the others.  After
writing, the controller records ``(cache, key, resourceVersion)`` under the owner's key;
:meth:`WrittenVersions.caught_up` is True once every such cache holds that object at that
version or later (resourceVersions are the store's revisions, so they compare as integers),
or it was deleted, or the record is older than ``timeout`` (a lost event cannot wedge an
owner).  A new leadership term starts empty, from caches that were listed after it began.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import Clock
from control.client import ObjectCache

__all__ = ["WrittenVersions"]


def _rv(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


@dataclass
class _Record:
    at: float
    seen: dict[tuple[int, str], tuple[ObjectCache, int]] = field(default_factory=dict)


class WrittenVersions:
    def __init__(self, clock: Clock, *, timeout: float = 30.0) -> None:
        self.clock = clock
        self.timeout = timeout
        self._records: dict[str, _Record] = {}

    def wrote(self, owner: str, cache: ObjectCache, written: Mapping[str, Any]) -> None:
        """``written`` (the object the apiserver returned) must appear in ``cache`` before
        ``owner`` is decided on again."""
        meta = written.get("metadata") or {}
        assert isinstance(meta, dict)
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        key = f"{ns}/{name}" if ns else str(name)
        rec = self._records.setdefault(owner, _Record(self.clock.monotonic()))
        rec.at = self.clock.monotonic()
        rec.seen[(id(cache), key)] = (cache, _rv(meta.get("resourceVersion")))

    def gone(self, owner: str, key: str) -> None:
        """The object ``key`` was deleted: nothing more of it will be seen."""
        rec = self._records.get(owner)
        if rec is not None:
            for k in [k for k in rec.seen if k[1] == key]:
                del rec.seen[k]

    def caught_up(self, owner: str) -> bool:
        rec = self._records.get(owner)
        if rec is None:
            return True
        for k, (cache, rv) in list(rec.seen.items()):
            obj = cache.get(k[1])
            if obj is not None and _rv((obj.get("metadata") or {}).get("resourceVersion")) >= rv:
                del rec.seen[k]
        if not rec.seen or self.clock.monotonic() - rec.at > self.timeout:
            del self._records[owner]
            return True
        return False

    def forget(self, owner: str) -> None:
        self._records.pop(owner, None)

    def clear(self) -> None:
        self._records.clear()
