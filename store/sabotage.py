"""Deliberately broken store behaviours, to prove that the chaos checkers catch real bugs.

A replica runs one only when its config says ``extra: {"sabotage": KIND}`` *and* its
environment has ``KETCH_ALLOW_SABOTAGE=1`` (the chaos suite's broken-store tests set both);
otherwise a sabotage setting is a start-up error.  Kinds:

* ``ack-before-commit`` — a txn is answered "succeeded" as soon as it is queued for Raft;
* ``stale-reads`` — linearizable reads are served from local state without a barrier;
* ``watch-skip`` — the watch fan-out silently drops every 25th event.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["KINDS", "WATCH_SKIP_EVERY", "fake_txn_success", "sabotage_of"]

KINDS = frozenset({"ack-before-commit", "stale-reads", "watch-skip"})
WATCH_SKIP_EVERY = 25


def sabotage_of(extra: dict[str, Any]) -> str | None:
    """The sabotage this replica must run, or None.  Raises ValueError if one is configured
    without the environment's permission, or is unknown."""
    kind = extra.get("sabotage")
    if kind is None:
        return None
    if kind not in KINDS:
        raise ValueError(f"unknown sabotage {kind!r} (known: {', '.join(sorted(KINDS))})")
    if os.environ.get("KETCH_ALLOW_SABOTAGE") != "1":
        raise ValueError(f"sabotage {kind!r} is configured but KETCH_ALLOW_SABOTAGE=1 is not set; "
                         "remove it from the config: it makes the store deliberately wrong")
    return kind


def fake_txn_success(cmd: dict[str, Any]) -> dict[str, Any]:
    """What ``ack-before-commit`` answers: a plausible success for the txn's success branch."""
    responses: list[dict[str, Any]] = []
    for op in cmd.get("req", {}).get("success", []):
        if "put" in op:
            responses.append({"put": {"prev_kv": None}})
        elif "delete_range" in op:
            responses.append({"delete_range": {"deleted": 1, "prev_kvs": []}})
        else:
            responses.append({"range": {"kvs": [], "count": 0, "more": False}})
    return {"header": {"revision": 0}, "succeeded": True, "responses": responses}
