"""The generic half of every strategy: what the registry does to an object around create,
update and status writes whatever its kind (kube-apiserver's ``BeforeCreate``/``BeforeUpdate``
plus the defaults of ``rest.RESTCreateStrategy``), with small hooks for the per-kind half.

Subclasses override class attributes (``name_rule``, ``tracks_generation``, ...) and the hooks
``default``, ``initial_status``, ``carry_over``, ``validate_spec`` and
``validate_spec_update``; nothing here branches on a kind. Everything is pure: objects are
plain JSON dicts changed in place, and the registry supplies uid, timestamps, generated names
and resourceVersion.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause
from control.api.kinds.schema import zero_fields

from .meta import validate_object_meta, validate_object_meta_update

__all__ = ["BaseStrategy", "metadata_of"]

#: Metadata a status write may not change (``ResetObjectMetaForStatus``).
_STATUS_RESET_META = ("labels", "annotations", "finalizers", "ownerReferences",
                      "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
#: Metadata an update may leave out and still keep (``ValidateObjectMetaAccessorUpdate``).
_KEPT_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def metadata_of(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj["metadata"]``, created empty if absent or not an object."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = copy.deepcopy(value)


def _keep_meta(meta: dict[str, Any], old_meta: Mapping[str, Any]) -> None:
    for field in _KEPT_META:
        if not meta.get(field) and old_meta.get(field):
            meta[field] = copy.deepcopy(old_meta[field])


class BaseStrategy:
    """Generic create/update/status behaviour for one resource.

    ``namespaced`` and ``status_subresource`` come from the catalog entry; the other
    attributes are per-kind class defaults. ``generation_paths`` lists the top-level paths
    (tuples of keys) whose change bumps ``metadata.generation`` when ``tracks_generation``.
    """

    name_rule: str = "subdomain"
    tracks_generation: bool = False
    keep_status_on_create: bool = False
    generation_paths: tuple[tuple[str, ...], ...] = (("spec",),)
    needs_uid_selector: bool = False
    needs_cluster_ip: bool = False
    #: Metadata a status write may change after all (Deployments: the controller records
    #: ``deployment.kubernetes.io/revision`` through its status writes, as kube's
    #: ``deploymentStatusStrategy`` resets only spec and labels).
    status_keeps_meta: tuple[str, ...] = ()
    #: The kind's status message when Go always writes some of its fields
    #: (``apps.v1.ReplicaSetStatus``: ``replicas``); they are filled with zeros on create and
    #: on every status write that leaves them out, as kube's JSON shows them.
    status_message: str | None = None

    def __init__(self, *, namespaced: bool, status_subresource: bool) -> None:
        self.namespaced = namespaced
        self.status_subresource = status_subresource

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(namespaced={self.namespaced}, "
                f"status_subresource={self.status_subresource})")

    # --- hooks --------------------------------------------------------------------------

    def default(self, obj: dict[str, Any]) -> None:
        """Fill defaults in place (runs on create and on every update). Idempotent."""

    def initial_status(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The status a new object starts with when clients may not set it (after defaults);
        None leaves no status at all."""
        return {}

    def carry_over(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        """Copy from ``old`` what an update keeps even when the client left it out."""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        """Kind-specific create validation (everything but object meta)."""
        return []

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        """Kind-specific update checks (immutable fields); ``validate_spec(new)`` also runs."""
        return []

    def apply_uid(self, obj: dict[str, Any], uid: str) -> None:
        """Uid-derived fields, called by the registry after it assigns the uid on create when
        ``needs_uid_selector``; a no-op for most kinds."""

    # --- the contract -------------------------------------------------------------------

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        """Defaults, the starting status and generation, in place. Deletion marks and a
        client-sent generation are dropped; status is replaced by :meth:`initial_status`
        when the resource has a status subresource (unless ``keep_status_on_create``)."""
        meta = metadata_of(obj)
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        self.default(obj)
        if self.status_subresource and not self.keep_status_on_create:
            _set_or_drop(obj, "status", self.initial_status(obj))
        self._fill_status_zeros(obj)
        if self.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        """Defaults and carried-over fields in ``new``; status stays ``old``'s when it has its
        own subresource; generation is ``old``'s, plus one when a ``generation_paths`` value
        changed and the kind tracks it. ``old`` is not modified."""
        meta, old_meta = metadata_of(new), old.get("metadata") or {}
        _keep_meta(meta, old_meta)
        self.default(new)
        self.carry_over(new, old)
        if self.status_subresource:
            _set_or_drop(new, "status", old.get("status"))
        generation = old_meta.get("generation")
        if self.tracks_generation and self._generation_changed(new, old):
            generation = (generation or 0) + 1
        _set_or_drop(meta, "generation", generation)

    def prepare_for_status_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        """Make ``new`` ``old`` with ``new``'s status: spec and every other top-level field,
        and the metadata a status write may not touch (labels, annotations, finalizers,
        owner references, deletion marks, generation; less ``status_keeps_meta``), come from
        ``old``. ``new``'s own metadata otherwise stays (resourceVersion precondition,
        managedFields)."""
        status = new.get("status")
        meta = dict(metadata_of(new))
        old_meta = old.get("metadata") or {}
        for field in _STATUS_RESET_META:
            if field not in self.status_keeps_meta:
                _set_or_drop(meta, field, old_meta.get(field))
        _keep_meta(meta, old_meta)
        new.clear()
        new.update(copy.deepcopy({k: v for k, v in old.items() if k not in ("metadata", "status")}))
        new["metadata"] = meta
        _set_or_drop(new, "status", status)
        self._fill_status_zeros(new)

    def _fill_status_zeros(self, obj: dict[str, Any]) -> None:
        if self.status_message is None:
            return
        status = obj.get("status")
        if status is None:
            status = obj["status"] = {}
        if isinstance(status, dict):
            for name, zero in zero_fields(self.status_message).items():
                status.setdefault(name, zero)

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        """Create validation: object meta, then the kind's own checks. Never raises."""
        causes = validate_object_meta(obj, namespaced=self.namespaced, name_rule=self.name_rule)
        return causes + self.validate_spec(obj)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        """Update validation: immutable metadata, the kind's immutable fields, then all of
        :meth:`validate` on ``new``."""
        return [*validate_object_meta_update(new, old), *self.validate_spec_update(new, old),
                *self.validate(new)]

    def _generation_changed(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
        return any(_get(new, path) != _get(old, path) for path in self.generation_paths)


def _get(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
