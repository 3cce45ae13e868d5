"""Tables for rbac.authorization.k8s.io/v1 Roles, ClusterRoles and their bindings."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from control.apiserver.tables._columns import AGE, CREATED, NAME, Column, Printer
from control.apiserver.tables._fields import age, items, mapping, text

__all__ = ["PRINTERS"]


def _subjects(binding: Mapping[str, Any]) -> tuple[str, str, str]:
    """Users, Groups and ServiceAccounts ("namespace/name") of a binding, each joined with
    ", "; subjects of other kinds are not shown."""
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in items(binding, "subjects"):
        kind, name = subject.get("kind"), text(subject, "name")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            accounts.append(f"{text(subject, 'namespace')}/{name}")
    return ", ".join(users), ", ".join(groups), ", ".join(accounts)


def _binding_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    ref = mapping(obj, "roleRef")
    users, groups, accounts = _subjects(obj)
    return [
        text(obj, "metadata", "name"),
        f"{text(ref, 'kind')}/{text(ref, 'name')}",
        age(obj, now),
        users,
        groups,
        accounts,
    ]


_BINDING = Printer(
    (
        NAME,
        Column("Role", "The role the binding grants, as kind/name."),
        AGE,
        Column("Users", "Users in the binding.", priority=1),
        Column("Groups", "Groups in the binding.", priority=1),
        Column("ServiceAccounts", "Service accounts in the binding.", priority=1),
    ),
    _binding_cells,
)

PRINTERS: dict[str, Printer] = {
    "Role": CREATED,
    "ClusterRole": CREATED,
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
}
