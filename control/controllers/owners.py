"""Owner references: who controls an object, and the references controllers write
(apimachinery ``metav1.NewControllerRef``, ``GetControllerOf``)."""

from __future__ import annotations

from typing import Any

__all__ = ["controller_of", "controller_ref", "is_controlled_by", "owner_ref"]

Obj = dict[str, Any]


def owner_ref(owner: Obj, *, controller: bool = False,
              block_owner_deletion: bool = False) -> Obj:
    meta = owner.get("metadata") or {}
    ref: Obj = {"apiVersion": owner.get("apiVersion", ""), "kind": owner.get("kind", ""),
                "name": meta.get("name", ""), "uid": meta.get("uid", "")}
    if controller:
        ref["controller"] = True
    if block_owner_deletion:
        ref["blockOwnerDeletion"] = True
    return ref


def controller_ref(owner: Obj) -> Obj:
    """The reference a controller puts on what it creates: controller and blockOwnerDeletion
    true (so foreground deletion of the owner waits for it)."""
    return owner_ref(owner, controller=True, block_owner_deletion=True)


def controller_of(obj: Obj) -> Obj | None:
    """The owner reference with ``controller: true``, if any (at most one is allowed)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")
