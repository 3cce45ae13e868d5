"""ControllerRevisions: the immutable snapshots of a pod template that the DaemonSet and
StatefulSet controllers keep, and that ``kubectl rollout history|undo`` reads (kubernetes
``pkg/controller/history``, and the DaemonSet's ``getPatch``/``Match``).

A revision's ``data`` is the strategic-merge patch that restores its owner's template:
``{"spec": {"template": {..., "$patch": "replace"}}}`` — exactly what ``kubectl rollout undo``
sends back as a PATCH.  Its canonical bytes (sorted keys, compact, Go's HTML escaping) are what
kubectl compares byte for byte, and what names are hashed from: a StatefulSet revision is
``NAME-<hash>`` where the hash is FNV-32 of those bytes plus the collision count, rendered in
apimachinery's safe alphabet, as Kubernetes computes it.

Pure helpers over revision dicts, plus :class:`History`, the writes (create with collision
handling, renumber, delete), each guarded by uid or resourceVersion.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from control.api.clock import parse_time
from control.api.errors import AlreadyExists, Conflict, NotFound
from control.api.objects import meta as _meta
from control.api.selectors import LabelSelector
from control.client import ApiClient, ObjectCache
from control.client import resources as R

from .owners import controller_of, controller_ref

__all__ = [
    "HASH_LABEL", "REVISION_LABEL", "History", "apply_revision", "canonical", "equal_revision",
    "find_equal_revisions", "hash_revision", "max_revision", "new_revision", "next_revision",
    "owned_revisions", "revision_name", "revision_template", "safe_encode", "sort_revisions",
    "template_patch",
]

Obj = dict[str, Any]
#: ``apps.ControllerRevisionHashLabelKey``: on pods (and DaemonSet revisions), which revision.
REVISION_LABEL = "controller-revision-hash"
#: ``history.ControllerRevisionHashLabel``: on StatefulSet revisions, the hash of their data.
HASH_LABEL = "controller.kubernetes.io/hash"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand.SafeEncodeString: no vowels
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}
_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)



def canonical(data: Any) -> bytes:
    """``data`` as Go's ``json.Marshal`` writes a ``map[string]interface{}``: sorted keys, no
    spaces, UTF-8, and ``<``, ``>``, ``&``, U+2028, U+2029 escaped."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in _GO_ESCAPES.items():
        if ch in text:  # these appear only inside strings, so replacing is safe
            text = text.replace(ch, esc)
    return text.encode()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def template_patch(owner: Obj) -> Obj:
    """The revision data of ``owner``'s current template (``getPatch``), its keys sorted at
    every level: the apiserver serves an object's keys in stored order, and kubectl compares
    the bytes it reads with Go's marshalling of the live template."""
    template = dict((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": _sorted(template)}}


def revision_template(revision: Obj) -> Obj:
    """The pod template a revision restores (its data without the ``$patch`` directive)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get(
        "template") or {})
    template.pop("$patch", None)
    return template


def apply_revision(owner: Obj, revision: Obj) -> Obj:
    """A copy of ``owner`` with the template of ``revision`` (``ApplyRevision``)."""
    out = copy.deepcopy(owner)
    out.setdefault("spec", {})["template"] = revision_template(revision)
    return out


def _fnv32(data: bytes) -> int:
    """FNV-1 (Go's ``hash/fnv.New32``, not the 1a variant)."""
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def safe_encode(text: str) -> str:
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in text)


def hash_revision(data: Any, probe: int | None = None) -> str:
    """``HashControllerRevision``: FNV-32 of the data's bytes and the probe's decimal text."""
    blob = canonical(data)
    if probe is not None:
        blob += str(probe).encode()
    return safe_encode(str(_fnv32(blob)))


def revision_name(prefix: str, hash_: str) -> str:
    """``prefix-hash``, the prefix cut to 223 bytes so the name stays within 253."""
    return f"{prefix[:223]}-{hash_}"


def new_revision(parent: Obj, data: Obj, revision: int, collision_count: int,
                 template_labels: dict[str, str] | None = None) -> Obj:
    """``NewControllerRevision`` (the StatefulSet's kind of revision): the template's labels
    plus the hash label, the parent's annotations, a controller reference, and a name from
    the hash of ``data`` with ``collision_count``."""
    h = hash_revision(data, collision_count)
    meta: Obj = {"name": revision_name(_meta(parent).get("name", ""), h),
                 "namespace": _meta(parent).get("namespace", ""),
                 "labels": {**(template_labels or {}), HASH_LABEL: h},
                 "ownerReferences": [controller_ref(parent)]}
    if _meta(parent).get("annotations"):
        meta["annotations"] = dict(_meta(parent)["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": meta,
            "data": data, "revision": revision}


def _number(revision: Obj) -> int:
    n = revision.get("revision")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """By revision number, then creation time, then name (``SortControllerRevisions``)."""
    return sorted(revisions, key=lambda r: (
        _number(r), parse_time(_meta(r).get("creationTimestamp")) or _EPOCH,
        _meta(r).get("name", "")))


def next_revision(sorted_revisions: list[Obj]) -> int:
    return _number(sorted_revisions[-1]) + 1 if sorted_revisions else 1


def max_revision(revisions: Iterable[Obj]) -> int:
    return max((_number(r) for r in revisions), default=0)


def equal_revision(a: Obj | None, b: Obj | None) -> bool:
    """Same data (``EqualRevision``: hash labels are not decimal here, so data decides)."""
    if a is None or b is None:
        return a is b
    return canonical(a.get("data")) == canonical(b.get("data"))


def find_equal_revisions(revisions: list[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revisions if equal_revision(r, needle)]


def owned_revisions(cache: ObjectCache, parent: Obj, selector: LabelSelector) -> list[Obj]:
    """Revisions in the parent's namespace matching ``selector`` that it controls or nobody
    does (``ListControllerRevisions``)."""
    uid = _meta(parent).get("uid")
    out = []
    for r in cache.list(_meta(parent).get("namespace", ""), selector):
        ref = controller_of(r)
        if ref is None or ref.get("uid") == uid:
            out.append(r)
    return out


class History:
    """The writes a controller makes to its ControllerRevisions (adoption and release go
    through :class:`~.refmanager.RefManager`)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def create(self, parent: Obj, revision: Obj, collision_count: int) -> tuple[Obj, int]:
        """Create ``revision`` named from its hash; on a name taken by different data, count
        a collision and try the next name (``CreateControllerRevision``).  Returns the revision
        (an existing identical one is as good) and the collision count used."""
        ns = _meta(parent).get("namespace", "")
        for _ in range(100):
            clone = copy.deepcopy(revision)
            h = hash_revision(revision.get("data"), collision_count)
            clone["metadata"]["name"] = revision_name(_meta(parent).get("name", ""), h)
            clone["metadata"].setdefault("labels", {})[HASH_LABEL] = h
            try:
                return await self.client.create(R.CONTROLLERREVISIONS, clone, ns), collision_count
            except AlreadyExists:
                exists = await self.client.get(R.CONTROLLERREVISIONS, clone["metadata"]["name"],
                                               ns)
                if canonical(exists.get("data")) == canonical(clone.get("data")):
                    return exists, collision_count
                collision_count += 1
        raise Conflict("controllerrevisions", _meta(parent).get("name", ""), group="apps",
                       why="no free name after 100 hash collisions")

    async def renumber(self, revision: Obj, number: int) -> Obj:
        """Set ``revision`` to ``number`` (guarded by its resourceVersion; on a conflict the
        fresh object is read and the change tried again)."""
        current = copy.deepcopy(revision)
        for attempt in range(5):
            if _number(current) == number:
                return current
            current["revision"] = number
            try:
                return await self.client.update(R.CONTROLLERREVISIONS, current)
            except Conflict:
                if attempt == 4:
                    raise
                meta = _meta(revision)
                current = await self.client.get(R.CONTROLLERREVISIONS, meta["name"],
                                                meta["namespace"])
                if _meta(current).get("uid") != meta.get("uid"):
                    raise NotFound("controllerrevisions", meta["name"], group="apps") from None
        return current

    async def delete(self, revision: Obj) -> None:
        """Delete ``revision`` (that very object: uid precondition); gone already is done."""
        meta = _meta(revision)
        try:
            await self.client.delete(R.CONTROLLERREVISIONS, meta["name"], meta["namespace"],
                                     preconditions={"uid": meta.get("uid", "")})
        except NotFound:
            pass
