"""What the chaos API clients learn from one call: its answer and its outcome (ok / fail /
unknown), and what a client believes about one of its objects (:mod:`chaos.api_workload`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .history import Status

__all__ = ["Answer", "Belief", "lists", "rv_of", "value_of"]


@dataclass
class Answer:
    code: int | None  # None: no HTTP answer (timeout, connection error)
    body: Any
    error: str | None = None

    def status(self, *, read: bool = False) -> Status:
        if self.code is None or self.code >= 500:
            return "unknown"
        if 200 <= self.code < 300 or (read and self.code == 404):
            return "ok"
        return "fail"

    def reason(self) -> str:
        return self.body.get("reason", "") if isinstance(self.body, dict) else ""


@dataclass
class Belief:
    """What a client knows of one of its objects; ``doubt`` after an unknown or surprising
    outcome (the next op on it is a GET); ``pending_create`` while its create is unknown."""

    value: str | None = None
    rv: int | None = None
    doubt: bool = False
    pending_create: bool = False


def lists(ans: Answer, name: str) -> bool:
    items = ans.body.get("items", ()) if ans.code == 200 and isinstance(ans.body, dict) else ()
    return any((i.get("metadata") or {}).get("name") == name for i in items)


def value_of(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    v = (obj.get("data") or {}).get("v")
    return v if isinstance(v, str) else None


def rv_of(obj: Any) -> int | None:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None
