"""Object storage for the registry: API objects as JSON values in the store, versioned by it.

The registry calls :class:`Storage`; it calls :class:`~store.client.StoreClient`.  Keys are
``/registry/<group or core>/<resource>/[<namespace>/]<name>``; values are the object's JSON
without ``metadata.resourceVersion``, which is filled in on every read from the key's
``mod_revision`` (resourceVersion *is* the store revision).  Every conditional write is a store
txn comparing ``mod_revision``, so a write based on a stale read fails with 409 Conflict.  Store
errors become API errors here only, through :func:`~control.apiserver.store_errors.from_store_error`.  No cache:
every call goes to the store (the watch cache sits above this later).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import inspect
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from control.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    InternalError,
    NotFound,
)
from control.apiserver.store_errors import from_store_error
from store.client import KeyValueStore, prefix_end
from store.errors import FutureRevision, StoreError

__all__ = [
    "GroupResource",
    "ListResult",
    "Mutate",
    "Storage",
    "check_preconditions",
    "collection_prefix",
    "decode_continue",
    "decode_object",
    "encode_continue",
    "object_key",
    "parse_resource_version",
]

Mutate = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]
_CONTINUE_VERSION = "meta.k8s.io/v1"


@dataclass(frozen=True)
class GroupResource:
    """A resource by API group (``""`` = core) and plural name: ``GroupResource("apps",
    "deployments")``."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


@dataclass(frozen=True)
class ListResult:
    """One page: the objects (each with its resourceVersion), the list's resourceVersion (the
    snapshot revision, the same on every page), the continue token (None on the last page)
    and how many items remain after this page (None when unknown or none)."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None
    remaining_item_count: int | None = None


def _segment(what: str, s: str) -> str:
    # Names become key segments: a "/" would let one object's key sit inside another's prefix.
    if not s or s in (".", "..") or "/" in s or "%" in s:
        raise BadRequest(
            f"invalid {what} {s!r}: may not be empty, '.', '..', or contain '/' or '%'")
    return s


def collection_prefix(gr: GroupResource, namespace: str = "") -> bytes:
    """The key prefix (ending in ``/``) of every object of ``gr``, in ``namespace`` if given."""
    parts = ["", "registry", _segment("group", gr.group or "core"),
             _segment("resource", gr.resource)]
    if namespace:
        parts.append(_segment("namespace", namespace))
    return ("/".join(parts) + "/").encode()


def object_key(gr: GroupResource, namespace: str, name: str) -> bytes:
    """The key of one object; ``namespace`` is ``""`` for cluster-scoped resources."""
    return collection_prefix(gr, namespace) + _segment("name", name).encode()


def parse_resource_version(rv: str | None) -> int:
    """A resourceVersion string as a revision; ``None``/``""`` → 0.  Anything not a
    non-negative integer is a 400."""
    if rv is None or rv == "":
        return 0
    if not rv.isascii() or not rv.isdigit():
        raise BadRequest(f"Invalid value: {rv!r}: resourceVersion must be a non-negative integer")
    return int(rv)


def _encode(obj: dict[str, Any]) -> bytes:
    """The stored form: the object without ``metadata.resourceVersion`` (the caller's dict is
    not changed)."""
    if not isinstance(obj, dict):
        raise BadRequest("object must be a JSON object")
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    return json.dumps({**obj, "metadata": meta}, separators=(",", ":"),
                      ensure_ascii=False).encode()


def decode_object(value: bytes, revision: int) -> dict[str, Any]:
    """A stored value as the API object it holds, with ``resourceVersion`` = ``revision``
    (the one decoder for reads, lists and the watch cache's feed); InternalError if the value
    is not a JSON object."""
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise InternalError(f"stored object is not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise InternalError("stored object is not a JSON object")
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def encode_continue(revision: int, start: str) -> str:
    """apiserver's token: base64url (unpadded) JSON ``{"v", "rv", "start"}``; ``start`` is
    the next key relative to the list prefix; ``rv`` -1 means "continue at the latest
    revision" (the inconsistent continuation an Expired answer offers)."""
    raw = json.dumps({"v": _CONTINUE_VERSION, "rv": revision, "start": start},
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_continue(token: str) -> tuple[int, str]:
    """``(revision, start)`` of a token from :func:`encode_continue`; 400 if malformed."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"continue key is not valid: {e}") from e
    if not isinstance(data, dict) or data.get("v") != _CONTINUE_VERSION:
        raise BadRequest("continue key is not valid: server does not recognize this encoded key")
    rv, start = data.get("rv"), data.get("start")
    if type(rv) is not int or rv == 0 or rv < -1 or not isinstance(start, str):
        raise BadRequest("continue key is not valid: incorrect encoded start resourceVersion "
                         f"(version {_CONTINUE_VERSION})")
    return rv, start


class Storage:
    """CRUD, list and watch of API objects over one :class:`StoreClient` (not owned: the
    caller opens and closes it).  Every method is a coroutine (``watch`` an async iterator)
    raising only :class:`~control.api.errors.APIError`.  ``max_update_attempts`` bounds the
    read-modify-write loop of :meth:`guaranteed_update`."""

    def __init__(self, client: KeyValueStore, *, max_update_attempts: int = 64) -> None:
        self._client = client
        self._attempts = max_update_attempts

    @contextlib.contextmanager
    def _translated(self, gr: GroupResource, name: str = "", **ctx: Any) -> Iterator[None]:
        try:
            yield
        except StoreError as e:
            raise from_store_error(e, resource=gr.resource, group=gr.group, name=name,
                                   **ctx) from e

    # --- single objects ----------------------------------------------------------------------

    async def create(self, gr: GroupResource, namespace: str, name: str,
                     obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` under a new key: 409 AlreadyExists if the key holds an object.
        Returns a copy of ``obj`` whose resourceVersion is the create revision (any
        resourceVersion the caller set is ignored)."""
        key, value = object_key(gr, namespace, name), _encode(obj)
        with self._translated(gr, name):
            ans = await self._client.txn([_cmp(key, "version", 0)],
                                         [{"put": {"key": key, "value": value}}])
        if not ans["succeeded"]:
            raise AlreadyExists(gr.resource, name, group=gr.group)
        return decode_object(value, ans["header"]["revision"])

    async def get(self, gr: GroupResource, namespace: str, name: str) -> dict[str, Any]:
        """The current object (a linearizable read), or 404 NotFound."""
        key = object_key(gr, namespace, name)
        with self._translated(gr, name):
            ans = await self._client.get(key)
        if not ans["kvs"]:
            raise NotFound(gr.resource, name, group=gr.group)
        kv = ans["kvs"][0]
        return decode_object(kv["value"], kv["mod_revision"])

    async def update(self, gr: GroupResource, namespace: str, name: str, obj: dict[str, Any],
                     *, expected_resource_version: str | None = None) -> dict[str, Any]:
        """Replace the object.  With ``expected_resource_version`` the write happens only if
        the stored object is still at that revision (else 409 Conflict with Kubernetes'
        "the object has been modified" message); without (or ``"0"``), unconditionally.
        404 if absent.
        Always writes (a new resourceVersion), even when nothing changed; use
        :meth:`guaranteed_update` to skip no-op writes."""
        key, value = object_key(gr, namespace, name), _encode(obj)
        expected = parse_resource_version(expected_resource_version)
        if expected:
            guard = _cmp(key, "mod_revision", expected)
        else:
            guard = _cmp(key, "version", 0, ">")
        with self._translated(gr, name):
            ans = await self._client.txn([guard], [{"put": {"key": key, "value": value}}],
                                         [{"range": {"key": key, "keys_only": True}}])
        if not ans["succeeded"]:
            if not ans["responses"][0]["range"]["kvs"]:
                raise NotFound(gr.resource, name, group=gr.group)
            raise Conflict(gr.resource, name, group=gr.group)
        return decode_object(value, ans["header"]["revision"])

    async def guaranteed_update(
        self, gr: GroupResource, namespace: str, name: str, mutate: Mutate,
        *, expected_resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Read-modify-write until it sticks (apiserver ``GuaranteedUpdate``).

        ``mutate`` gets a private copy of the current object (with resourceVersion) and
        returns the new one (it may be a coroutine function); raising aborts with its error.
        The write is a CAS on the revision read; on a lost race the winner's object (returned
        by the failed txn, no extra read) is mutated again, at most ``max_update_attempts``
        times, then 409 Conflict.  ``expected_resource_version`` is a precondition checked
        against every read (409 if it differs: after a lost race it always does).  404 if
        absent.  If ``mutate`` changes nothing, nothing is written and the current object is
        returned."""
        key = object_key(gr, namespace, name)
        current = await self.get(gr, namespace, name)
        expected = parse_resource_version(expected_resource_version)
        for _ in range(self._attempts):
            rev = int(current["metadata"]["resourceVersion"])
            if expected and rev != expected:  # every attempt: a lost race means "modified"
                raise Conflict(gr.resource, name, group=gr.group)
            result = mutate(copy.deepcopy(current))
            new = await result if inspect.isawaitable(result) else result
            value = _encode(new)
            if value == _encode(current):
                return current
            with self._translated(gr, name):
                ans = await self._client.txn([_cmp(key, "mod_revision", rev)],
                                             [{"put": {"key": key, "value": value}}],
                                             [{"range": {"key": key}}])
            if ans["succeeded"]:
                return decode_object(value, ans["header"]["revision"])
            kvs = ans["responses"][0]["range"]["kvs"]
            if not kvs:
                raise NotFound(gr.resource, name, group=gr.group)
            current = decode_object(kvs[0]["value"], kvs[0]["mod_revision"])
        raise Conflict(gr.resource, name, group=gr.group)

    async def delete(self, gr: GroupResource, namespace: str, name: str,
                     *, expected_resource_version: str | None = None,
                     expected_uid: str | None = None) -> dict[str, Any]:
        """Delete the object and return its last state with resourceVersion = the delete's
        revision (as the DELETED watch event carries).  404 if absent.  Preconditions (the
        ``DeleteOptions.preconditions``) give 409 Conflict with apimachinery's "Precondition
        failed" text when the stored object differs."""
        key = object_key(gr, namespace, name)
        cur = await self.get(gr, namespace, name)
        # CAS on what was checked: a concurrent change re-runs the preconditions on it.
        for _ in range(self._attempts):
            check_preconditions(gr, name, cur, expected_resource_version, expected_uid)
            with self._translated(gr, name):
                ans = await self._client.txn(
                    [_cmp(key, "mod_revision", int(cur["metadata"]["resourceVersion"]))],
                    [{"delete_range": {"key": key, "prev_kv": True}}], [{"range": {"key": key}}])
            if ans["succeeded"]:
                prev = ans["responses"][0]["delete_range"]["prev_kvs"][0]
                return decode_object(prev["value"], ans["header"]["revision"])
            kvs = ans["responses"][0]["range"]["kvs"]
            if not kvs:
                raise NotFound(gr.resource, name, group=gr.group)
            cur = decode_object(kvs[0]["value"], kvs[0]["mod_revision"])
        raise Conflict(gr.resource, name, group=gr.group)

    # --- collections -------------------------------------------------------------------------

    async def list(
        self, gr: GroupResource, namespace: str = "", *, limit: int = 0,
        continue_token: str | None = None, resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> ListResult:
        """One page of the objects of ``gr`` (in ``namespace``, or all), in key order.

        Without ``resource_version`` (or ``"0"``) the first page reads at the current
        revision; ``"N"`` with ``resource_version_match="Exact"`` (or, as Kubernetes does, with
        no match but a ``limit``) reads at exactly N (410 if compacted), ``NotOlderThan`` (or no
        match, no limit) reads now and fails 504 if the store is behind N.  Later pages read at
        the revision in the continue token, so all pages form one snapshot whose revision is
        ``resource_version`` of every page; a compacted token revision → 410 Expired with a
        token to continue inconsistently at the latest revision.  ``continue_token`` together
        with a ``resource_version`` other than ``""``/``"0"`` is a 400."""
        prefix = collection_prefix(gr, namespace)
        if limit < 0:
            raise BadRequest("limit must be non-negative")
        paging, start, rev, at_least = bool(continue_token), "", 0, 0
        if continue_token:
            if resource_version not in (None, "", "0"):
                raise BadRequest("specifying resource version is not allowed when using continue")
            rev, start = decode_continue(continue_token)
            rev = max(rev, 0)
        else:
            if resource_version_match not in (None, "", "Exact", "NotOlderThan"):
                raise BadRequest(f"invalid resourceVersionMatch {resource_version_match!r}")
            wanted = parse_resource_version(resource_version)
            exact = resource_version_match == "Exact" or (not resource_version_match and limit)
            rev, at_least = (wanted, 0) if exact else (0, wanted)
        fresh = encode_continue(-1, start) if paging else None
        with self._translated(gr, listing=True, paging=paging, continue_token=fresh,
                              resource_version=rev):
            ans = await self._client.get(prefix + start.encode(), range_end=prefix_end(prefix),
                                         revision=rev, limit=limit)
            if at_least > ans["header"]["revision"]:
                raise FutureRevision("", revision=at_least,
                                     current_revision=ans["header"]["revision"])
        snapshot = rev or ans["header"]["revision"]
        kvs = ans["kvs"]
        items = [decode_object(kv["value"], kv["mod_revision"]) for kv in kvs]
        if not ans["more"] or not kvs:
            return ListResult(items, str(snapshot))
        last = kvs[-1]["key"][len(prefix):].decode()
        return ListResult(items, str(snapshot), encode_continue(snapshot, last + "\0"),
                          ans["count"] - len(kvs))

    async def watch(
        self, gr: GroupResource, namespace: str = "", *, resource_version: str | None = None,
        bookmarks: bool = False,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every change to objects of ``gr`` (in ``namespace``, or all) strictly after
        ``resource_version`` (``None``/``"0"``: from now), in revision order, as
        ``("ADDED"|"MODIFIED"|"DELETED", object)``; each object's resourceVersion is the
        revision of its event (a DELETED object is the last state before the delete).
        ``bookmarks`` adds ``("BOOKMARK", {"metadata": {"resourceVersion"}})`` on store
        progress notifications.  A compacted start → 410 Expired ``too old resource
        version: N (M)``.  No synthetic initial ADDED events (that is the caller's list)."""
        prefix = collection_prefix(gr, namespace)
        rv = parse_resource_version(resource_version)
        frames = cast(AsyncGenerator[dict[str, Any], None], self._client.watch(
            prefix, range_end=prefix_end(prefix), start_revision=rv + 1 if rv else 0,
            prev_kv=True))
        with self._translated(gr, resource_version=rv):
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    for ev in frame.get("events", ()):
                        yield _watch_event(ev)
                    if bookmarks and frame.get("progress"):
                        yield "BOOKMARK", {"metadata": {
                            "resourceVersion": str(frame["header"]["revision"])}}


def _cmp(key: bytes, target: str, value: int, result: str = "==") -> dict[str, Any]:
    return {"key": key, "target": target, "result": result, "value": value}


def check_preconditions(gr: GroupResource, name: str, cur: dict[str, Any],
                         rv: str | None, uid: str | None) -> None:
    """apimachinery ``Preconditions.Check``: 409 with its exact "Precondition failed" text."""
    meta = cur["metadata"]
    if uid is not None and meta.get("uid", "") != uid:
        raise Conflict(gr.resource, name, group=gr.group, why=(
            f"Precondition failed: UID in precondition: {uid}, "
            f"UID in object meta: {meta.get('uid', '')}"))
    if rv is not None and meta["resourceVersion"] != rv:
        raise Conflict(gr.resource, name, group=gr.group, why=(
            f"Precondition failed: ResourceVersion in precondition: {rv}, "
            f"ResourceVersion in object meta: {meta['resourceVersion']}"))


def _watch_event(ev: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kv = ev["kv"]
    if ev["type"] == "put":
        kind = "ADDED" if kv["create_revision"] == kv["mod_revision"] else "MODIFIED"
        return kind, decode_object(kv["value"], kv["mod_revision"])
    prev = ev.get("prev_kv")
    if not prev:
        raise InternalError(f"delete event without the previous object at revision "
                            f"{kv['mod_revision']}")
    return "DELETED", decode_object(prev["value"], kv["mod_revision"])
