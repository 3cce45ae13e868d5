"""Values of the key space: one version of a key (`KeyValue`) and one change to it (`Event`).

The MVCC key space stores `KeyValue` objects as its versions and the state machine hands
`Event` objects to watchers; both cross the wire as plain CBOR maps through ``to_wire`` /
``from_wire`` (see docs/store-api.md, "Values").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store.errors import InvalidRequest

__all__ = ["DELETE", "PUT", "Event", "KeyValue"]

PUT = "put"
DELETE = "delete"


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of one key.

    A tombstone (the version written by a delete) has ``version == 0``, an empty value,
    ``create_revision == 0`` and ``mod_revision`` = the revision of the delete; it is exactly
    the ``kv`` of a delete event.
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @property
    def is_tombstone(self) -> bool:
        return self.version == 0

    def to_wire(self, *, keys_only: bool = False) -> dict[str, Any]:
        """The wire map; with ``keys_only`` the value is ``b""`` (range's keys_only)."""
        return {
            "key": self.key,
            "value": b"" if keys_only else self.value,
            "create_revision": self.create_revision,
            "mod_revision": self.mod_revision,
            "version": self.version,
            "lease": self.lease,
        }

    @classmethod
    def from_wire(cls, data: Any) -> KeyValue:
        """Rebuild from the wire map; raises InvalidRequest when it is malformed."""
        try:
            kv = cls(
                data["key"],
                data["value"],
                data["create_revision"],
                data["mod_revision"],
                data["version"],
                data["lease"],
            )
        except (KeyError, TypeError) as exc:
            raise InvalidRequest(f"malformed KeyValue: {exc}") from None
        if type(kv.key) is not bytes or type(kv.value) is not bytes:
            raise InvalidRequest("malformed KeyValue: key and value must be bytes")
        return kv


@dataclass(frozen=True, slots=True)
class Event:
    """A put or delete of one key at one revision; ``prev_kv`` is the version it replaced
    (None when the key did not exist)."""

    type: str
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    def to_wire(self) -> dict[str, Any]:
        prev = self.prev_kv
        return {
            "type": self.type,
            "kv": self.kv.to_wire(),
            "prev_kv": None if prev is None else prev.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: Any) -> Event:
        """Rebuild from the wire map; raises InvalidRequest when it is malformed."""
        if not isinstance(data, dict) or data.get("type") not in (PUT, DELETE):
            raise InvalidRequest(f"malformed Event: {data!r:.200}")
        prev = data.get("prev_kv")
        return cls(
            data["type"],
            KeyValue.from_wire(data.get("kv")),
            None if prev is None else KeyValue.from_wire(prev),
        )
