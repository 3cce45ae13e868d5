"""One replica's settings: who it is, who its peers are, where its data and certificates live.

A replica is configured by a JSON file (``python -m store --config FILE``) or by flags; both end
up as a :class:`ReplicaConfig`.  The same file format is what ``ketch store up`` writes for each
replica, so a three-machine cluster is three such files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Member", "ReplicaConfig", "load_config"]


@dataclass(frozen=True)
class Member:
    """A cluster member: its name, its Raft address ``host:port`` and its client URL."""

    name: str
    raft: str
    client: str  # https://host:port


@dataclass(frozen=True)
class ReplicaConfig:
    """Everything one replica process needs.  Paths are absolute after :func:`load_config`.

    ``members`` lists every member including this one (``name``).  ``fsync`` False relaxes
    durability: writes are acknowledged once in the page cache of a majority (they survive a
    process crash, not a power loss).  ``raft_fixes`` False switches off the workarounds for
    pysyncobj's truncation bug (only for the chaos suite's proof that it catches the bug).
    """

    name: str
    data_dir: Path
    members: tuple[Member, ...]
    ca: Path
    cert: Path
    key: Path
    raft_secret_file: Path
    fsync: bool = True
    raft_fixes: bool = True
    election_timeout: tuple[float, float] = (0.3, 0.6)
    heartbeat: float = 0.05
    compaction_retention: int = 100_000
    progress_interval: float = 5.0
    raft_routes: dict[str, str] = field(default_factory=dict)
    # Raft pipelining.  The defaults favour big entries (group commit); pysyncobj's own
    # defaults (64 KiB messages, one command per entry, many in flight) are what its
    # truncation bug needs, so the chaos suite sets them to prove it catches that bug.
    raft_batch_bytes: int = 8 * 2**20
    snapshot_entries: int = 50_000  # log entries that make a snapshot due...
    snapshot_seconds: float = 300.0  # ...or this long; each replica takes its third of it
    max_inflight_entries: int = 1
    max_entry_commands: int = 0  # 0: no limit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def me(self) -> Member:
        for m in self.members:
            if m.name == self.name:
                return m
        raise ValueError(f"member {self.name!r} is not in the members list")

    @property
    def peers(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.name != self.name)

    def dial_address(self, peer: Member) -> str:
        """The address this replica uses for ``peer`` in Raft.

        pysyncobj opens one connection per pair, dialled by the member whose address sorts
        higher, and identifies the dialler by its own address.  So a route (e.g. a
        fault-injecting proxy in front of ``peer``) applies only where this replica dials,
        and must sort below this replica's own address; elsewhere the peer is known by its
        real address.  Raises ValueError on a route that would break that rule."""
        route = self.raft_routes.get(peer.name)
        me = self.me.raft
        if route is None or me < peer.raft:
            return peer.raft
        if not route < me:
            raise ValueError(
                f"raft route {route!r} for {peer.name} must sort below {me!r} "
                "(use ports of the same number of digits, proxies below replicas)"
            )
        return route

    def to_json(self) -> str:
        d = asdict(self)
        for k in ("data_dir", "ca", "cert", "key", "raft_secret_file"):
            d[k] = str(d[k])
        d["election_timeout"] = list(self.election_timeout)
        return json.dumps(d, indent=2, sort_keys=True)


def load_config(path: Path) -> ReplicaConfig:
    """Read a replica config file; relative paths are taken relative to the file's directory.

    Raises ValueError with the offending field on anything missing or malformed."""
    base = path.resolve().parent
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read replica config {path}: {e}") from e
    try:
        members = tuple(Member(**m) for m in raw.pop("members"))
        for k in ("data_dir", "ca", "cert", "key", "raft_secret_file"):
            raw[k] = (base / raw[k]).resolve()
        if "election_timeout" in raw:
            raw["election_timeout"] = tuple(raw["election_timeout"])
        cfg = ReplicaConfig(members=members, **raw)
    except (KeyError, TypeError) as e:
        raise ValueError(f"replica config {path} is malformed: {e}") from e
    cfg.me  # noqa: B018 - validates that the replica is a member
    return cfg
