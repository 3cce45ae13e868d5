"""Completion indexes of Indexed Jobs (kubernetes ``pkg/controller/job/indexed_job_utils.go``):
the compressed interval form ``status.completedIndexes`` is written in (``"1,3-5,7"``), which
indexes still need a pod, and which active pods repeat an index.

Pure functions over pod dicts.  A pod's index is its
``batch.kubernetes.io/job-completion-index`` annotation; a missing, malformed or negative
value is :data:`UNKNOWN`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from .jobutil import COMPLETION_INDEX
from .replicaset import pods_to_delete

__all__ = [
    "INDEX_FAILURE_COUNT", "UNKNOWN", "Intervals", "absolute_failure_count", "completion_index",
    "duplicated_index_pods", "first_pending", "format_intervals", "index_failure_count",
    "parse_intervals", "with_indexes",
]

Obj = dict[str, Any]
UNKNOWN = -1
#: Ordered, non-overlapping, non-adjacent ``(first, last)`` pairs.
Intervals = list[tuple[int, int]]


def completion_index(pod: Obj) -> int:
    """The pod's completion index, or UNKNOWN."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX)
    if not isinstance(value, str):
        return UNKNOWN
    try:
        ix = int(value)
    except ValueError:
        return UNKNOWN
    return ix if ix >= 0 else UNKNOWN


def parse_intervals(text: str | None, completions: int) -> Intervals:
    """``status.completedIndexes`` as intervals, dropping indexes ``>= completions`` and
    skipping corrupted terms (as the controller does: a bad status never wedges a Job)."""
    out: Intervals = []
    for term in (text or "").split(","):
        if not term:
            continue
        first_s, _, last_s = term.partition("-")
        try:
            first = int(first_s)
            last = int(last_s) if last_s else first
        except ValueError:
            continue
        if first >= completions:
            break
        last = min(last, completions - 1)
        if out and out[-1][1] == first - 1:
            out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def format_intervals(iv: Intervals) -> str:
    """``"0-2,4,6,7"``: a run of two is written as two numbers, longer runs with a dash."""
    parts = []
    for first, last in iv:
        if last == first:
            parts.append(str(first))
        elif last == first + 1:
            parts.append(f"{first},{last}")
        else:
            parts.append(f"{first}-{last}")
    return ",".join(parts)


def total(iv: Intervals) -> int:
    return sum(last - first + 1 for first, last in iv)


def has(iv: Intervals, ix: int) -> bool:
    pos = bisect.bisect_left(iv, (ix + 1, -1))  # first interval starting after ix
    return pos > 0 and iv[pos - 1][0] <= ix <= iv[pos - 1][1]


def merge(a: Intervals, b: Intervals) -> Intervals:
    """The union of two interval lists, merged where they touch."""
    out: Intervals = []
    for first, last in sorted([*a, *b]):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def with_indexes(iv: Intervals, indexes: Iterable[int]) -> Intervals:
    return merge(iv, [(i, i) for i in sorted(set(indexes))])


def first_pending(count: int, completions: int, non_pending: Intervals) -> list[int]:
    """The ``count`` lowest indexes below ``completions`` not in ``non_pending`` (succeeded,
    active, failed or — with podReplacementPolicy Failed — terminating)."""
    out: list[int] = []
    candidate = 0
    for first, last in non_pending:
        while candidate < completions and len(out) < count and candidate < first:
            out.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    while candidate < completions and len(out) < count:
        out.append(candidate)
        candidate += 1
    return out


def duplicated_index_pods(pods: list[Obj], completions: int) -> tuple[list[Obj], list[Obj]]:
    """Split active pods into (to remove, to keep): pods without a valid index or with an
    index ``>= completions`` go, and of several pods with one index all but the one that
    matters most (``controller.ActivePods`` order: the last) go."""
    remove: list[Obj] = []
    keep: list[Obj] = []
    by_index: dict[int, list[Obj]] = {}
    for p in pods:
        ix = completion_index(p)
        if ix == UNKNOWN or ix >= completions:
            remove.append(p)
        else:
            by_index.setdefault(ix, []).append(p)
    for ix in sorted(by_index):
        group = pods_to_delete(by_index[ix], len(by_index[ix]))  # least valuable first
        remove.extend(group[:-1])
        keep.append(group[-1])
    return remove, keep


# --- backoffLimitPerIndex ---------------------------------------------------------------------

INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
_INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"


def _count(pod: Obj, key: str) -> int:
    """An int32 annotation; 0 when absent or not a sane value (a user may have set it)."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        n = int(value) if isinstance(value, str) else 0
    except ValueError:
        return 0
    return n if 0 <= n <= 2**31 - 1 else 0


def index_failure_count(pod: Obj) -> int:
    """Failures of this pod's index before this pod (``job-index-failure-count``)."""
    return _count(pod, INDEX_FAILURE_COUNT)


def absolute_failure_count(pod: Obj) -> int:
    return _count(pod, INDEX_FAILURE_COUNT) + _count(pod, _INDEX_IGNORED_FAILURE_COUNT)
