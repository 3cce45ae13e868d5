"""What the Deployment controller computes from a Deployment and its ReplicaSets — sizes,
fenceposts, revisions, annotations, which set is new — as pure functions over API dicts
(kubernetes ``pkg/controller/deployment/util/deployment_util.go``; the status and its
conditions are in :mod:`.deployment_status`).

Nothing here writes or reads the clock: callers pass ``now``.  Functions that take a ReplicaSet
to change (``set_*``) change the dict they are given, which must be the caller's own copy,
never a cached object.  Numbers follow Kubernetes exactly: ``maxSurge`` percentages round up,
``maxUnavailable`` percentages round down, and when both resolve to 0 ``maxUnavailable`` is 1;
proportions round half away from zero (Go's ``math.Round``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .podutil import template_hash

__all__ = [
    "DESIRED_REPLICAS", "HASH_LABEL", "MAX_REPLICAS", "REVISION", "REVISION_HISTORY", "active",
    "available", "by_creation", "by_revision", "desired", "equal_ignore_hash",
    "find_active_or_latest", "find_new", "find_old", "get_proportion",
    "has_revision_history_limit", "is_rolling", "is_saturated", "max_revision", "max_surge",
    "max_unavailable", "new_replica_set", "new_rs_new_replicas",
    "replicas_annotations_need_update", "revision",
    "scaled_value", "set_deployment_revision", "set_new_rs_annotations",
    "set_replicas_annotations", "spec_replicas", "status_int",
]

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_ROLLBACK_TO = "deprecated.deployment.rollback.to-revision"
#: Deployment annotations never copied to its ReplicaSets (``annotationsToSkip``).
_SKIP = frozenset({_LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                   _ROLLBACK_TO})
_MAX_HISTORY_CHARS = 2000  # revision-history is trimmed to this length (~100 revisions)
_MAX_INT32 = 2**31 - 1

# --- fields ----------------------------------------------------------------------------------


def _spec(obj: Obj | None) -> Obj:
    spec: Obj = (obj or {}).get("spec") or {}
    return spec


def _annotations(obj: Obj) -> dict[str, str]:
    ann: dict[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    return ann


def spec_replicas(obj: Obj | None) -> int:
    """``spec.replicas`` (absent: 1, the apiserver's default)."""
    value = _spec(obj).get("replicas")
    return 1 if value is None else int(value)


def desired(d: Obj) -> int:
    return spec_replicas(d)


def status_int(obj: Obj | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0)


def available(rs: Obj | None) -> int:
    """Pods of ``rs`` that count as available once it has its ``spec.replicas``: its
    ``status.availableReplicas``, but never more than it is scaled to — a status written
    before a scale-down still counts the pods being deleted, and counting those would let a
    rollout take down more than ``maxUnavailable``."""
    return min(status_int(rs, "availableReplicas"), spec_replicas(rs)) if rs else 0


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """The ReplicaSets scaled above 0 (``FilterActiveReplicaSets``)."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def by_creation(rs: Obj) -> tuple[str, str]:
    """Sort key: oldest first, then by name (``ReplicaSetsByCreationTimestamp``)."""
    meta = rs.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def by_revision(rs: Obj) -> tuple[int, str, str]:
    """Sort key: lowest revision first, then oldest (``ReplicaSetsByRevision``)."""
    try:
        rev = revision(rs)
    except ValueError:
        rev = 0
    return (rev, *by_creation(rs))


# --- maxSurge / maxUnavailable ---------------------------------------------------------------


def is_rolling(d: Obj) -> bool:
    return (_spec(d).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString count or percentage of ``total`` (``GetScaledValueFromIntOrPercent``);
    None is 0."""
    if value is None:
        return 0
    if isinstance(value, str):
        if not value.endswith("%"):
            return int(value)
        scaled = int(value[:-1]) * total
        return -(-scaled // 100) if round_up else scaled // 100
    return int(value)


def _fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved together (``ResolveFenceposts``)."""
    rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    want = desired(d)
    surge = scaled_value(rolling.get("maxSurge"), want, True)
    unavailable = scaled_value(rolling.get("maxUnavailable"), want, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # validation forbids 0/0, rounding down may still give it
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return _fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or desired(d) == 0:
        return 0
    return min(_fenceposts(d)[1], desired(d))


# --- revisions and annotations ---------------------------------------------------------------


def revision(obj: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation (0 when absent; ValueError when
    not a number)."""
    value = _annotations(obj).get(REVISION)
    return 0 if value is None else int(value)


def max_revision(rss: Iterable[Obj | None]) -> int:
    best = 0
    for rs in rss:
        if rs is None:
            continue
        try:
            best = max(best, revision(rs))
        except ValueError:
            continue  # a hand-edited revision is skipped, as kube does
    return best


def set_deployment_revision(d: Obj, rev: str) -> bool:
    ann = d.setdefault("metadata", {}).setdefault("annotations", {})
    if ann.get(REVISION) == rev:
        return False
    ann[REVISION] = rev
    return True


def _own_annotations(rs: Obj) -> dict[str, str]:
    meta = rs.setdefault("metadata", {})
    if not isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {}
    ann: dict[str, str] = meta["annotations"]
    return ann


def set_replicas_annotations(rs: Obj, desired_replicas: int, max_replicas: int) -> bool:
    ann = _own_annotations(rs)
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired_replicas)),
                       (MAX_REPLICAS, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired_replicas: int, max_replicas: int) -> bool:
    ann = _annotations(rs)
    return (ann.get(DESIRED_REPLICAS) != str(desired_replicas)
            or ann.get(MAX_REPLICAS) != str(max_replicas))


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, *, exists: bool) -> bool:
    """Copy the Deployment's annotations (all but :data:`_SKIP`) to ``rs``, raise its revision
    to ``new_revision`` when lower (keeping the old number in ``revision-history``: a
    rollback), and for a ReplicaSet about to be created set desired/max replicas.  True when
    ``rs`` changed (``SetNewReplicaSetAnnotations``)."""
    ann = _own_annotations(rs)
    changed = False
    for key, value in _annotations(d).items():
        if key not in _SKIP and ann.get(key) != value:
            ann[key] = value
            changed = True
    old = ann.get(REVISION)
    try:
        old_number = int(old) if old else 0
    except ValueError:
        return False
    if old_number < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old is not None:
            _append_history(ann, old)
    want = desired(d)
    if not exists and set_replicas_annotations(rs, want, want + max_surge(d)):
        changed = True
    return changed


def _append_history(ann: dict[str, str], old: str) -> None:
    history = ann.get(REVISION_HISTORY, "")
    if not history:
        ann[REVISION_HISTORY] = old
        return
    olds = history.split(",")
    total, start = len(history) + len(old) + 1, 0
    while total > _MAX_HISTORY_CHARS and start < len(olds):
        total -= len(olds[start]) + 1
        start += 1
    if total <= _MAX_HISTORY_CHARS:
        ann[REVISION_HISTORY] = ",".join([*olds[start:], old])


# --- which ReplicaSet is new -----------------------------------------------------------------


def _normal(value: Any) -> Any:
    """Go's semantic equality treats nil and empty maps and slices alike."""
    if isinstance(value, dict):
        out = {k: _normal(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def equal_ignore_hash(t1: Obj | None, t2: Obj | None) -> bool:
    """Two pod templates are equal but for their ``pod-template-hash`` label."""
    a, b = copy.deepcopy(t1 or {}), copy.deepcopy(t2 or {})
    for t in (a, b):
        ((t.get("metadata") or {}).get("labels") or {}).pop(HASH_LABEL, None)
    return bool(_normal(a) == _normal(b))


def find_new(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (``FindNewReplicaSet``)."""
    template = _spec(d).get("template")
    for rs in sorted(rss, key=by_creation):
        if equal_ignore_hash(_spec(rs).get("template"), template):
            return rs
    return None


def find_old(d: Obj, rss: Sequence[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(old ReplicaSets with replicas, every old ReplicaSet)."""
    new = find_new(d, rss)
    uid = (new or {}).get("metadata", {}).get("uid")
    olds = [rs for rs in rss if new is None or (rs.get("metadata") or {}).get("uid") != uid]
    return [rs for rs in olds if spec_replicas(rs) != 0], olds


def find_active_or_latest(new: Obj | None, olds: Sequence[Obj]) -> Obj | None:
    """The only active ReplicaSet, or the newest when none is active; None when several are
    (they then scale proportionally)."""
    if new is None and not olds:
        return None
    newest_first = sorted(olds, key=by_creation, reverse=True)
    running = active([*newest_first, new])
    if not running:
        return new if new is not None else newest_first[0]
    return running[0] if len(running) == 1 else None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    try:
        want = int(_annotations(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    return (spec_replicas(rs) == desired(d) == want
            and status_int(rs, "availableReplicas") == desired(d))


# --- sizes -----------------------------------------------------------------------------------


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj | None], new: Obj) -> int:
    """How big the new ReplicaSet may be now (``NewRSNewReplicas``): Recreate goes straight
    to ``replicas``; RollingUpdate grows it while all ReplicaSets together stay within
    ``replicas + maxSurge``."""
    kind = (_spec(d).get("strategy") or {}).get("type", "RollingUpdate")
    if kind == "Recreate":
        return desired(d)
    if kind != "RollingUpdate":
        raise ValueError(f"deployment type {kind} isn't supported")
    rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), desired(d), True)
    current = sum(spec_replicas(rs) for rs in all_rss if rs is not None)
    ceiling = desired(d) + surge
    if current >= ceiling:
        return spec_replicas(new)
    return spec_replicas(new) + min(ceiling - current, desired(d) - spec_replicas(new))


def _round(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _fraction(rs: Obj, d: Obj) -> int:
    if desired(d) == 0:
        return -spec_replicas(rs)
    size = desired(d) + max_surge(d)
    try:
        annotated = int(_annotations(rs)[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = status_int(d, "replicas")
    if annotated <= 0:
        return 0
    return _round(spec_replicas(rs) * size / annotated) - spec_replicas(rs)


def get_proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    """The share of ``to_add`` replicas (negative: to remove) that ``rs`` takes, given that
    ``added`` were already handed out (``GetProportion``)."""
    if rs is None or spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction, allowed = _fraction(rs, d), to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def has_revision_history_limit(d: Obj) -> bool:
    value = _spec(d).get("revisionHistoryLimit")
    return value is not None and value != _MAX_INT32


def new_replica_set(d: Obj, owner_ref: Obj) -> Obj:
    """The new ReplicaSet for ``d``'s template, at 0 replicas: named ``NAME-<hash>`` (the hash
    of the template and ``status.collisionCount``), the ``pod-template-hash`` label added to
    its labels, selector and template (``getNewReplicaSet``)."""
    spec, meta = _spec(d), d.get("metadata") or {}
    template = copy.deepcopy(spec.get("template") or {})
    digest = template_hash(template, (d.get("status") or {}).get("collisionCount"))
    labels = {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: digest}
    template.setdefault("metadata", {})["labels"] = labels
    selector = copy.deepcopy(spec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: digest}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta.get('name')}-{digest}",
                         "namespace": meta.get("namespace"), "ownerReferences": [owner_ref],
                         "labels": dict(labels)},
            "spec": {"replicas": 0, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                     "selector": selector, "template": template}}
