"""Impersonation: a caller acting as another user (``kubectl --as``, ``--as-group``,
``--as-uid``), as kube-apiserver's ``WithImpersonation`` filter does it.

The ``Impersonate-User``, ``Impersonate-Group`` (repeatable), ``Impersonate-Uid`` and
``Impersonate-Extra-<key>`` headers each name something the *authenticated* caller must be
allowed to ``impersonate``: ``users`` (or ``serviceaccounts`` in the account's namespace for a
``system:serviceaccount:NS:NAME`` user), ``groups``, ``uids`` and ``userextras/<key>`` (the last
two in API group ``authentication.k8s.io``).  Every one is authorized before the identity
changes; the first refusal is a 403 naming it (``users "jane" is forbidden: User "bob" cannot
impersonate resource "users" in API group "" at the cluster scope``).  Groups, a uid or extras
without a user are a 400.  The resulting identity is exactly what was asked for, plus
``system:authenticated`` (or ``system:unauthenticated`` for ``system:anonymous``); a service
account without explicit groups gets its fixed ones.  Pure: the caller passes the headers and
the authorizer, and logs the change of identity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import unquote

from multidict import CIMultiDictProxy, MultiDictProxy

from control.api.errors import APIError, BadRequest
from control.apiserver.rbac import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    Attributes,
    Authorizer,
    UserInfo,
    forbidden_status,
)

__all__ = ["ImpersonationForbidden", "describe", "impersonate", "wants_impersonation"]

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
_AUTHENTICATION = "authentication.k8s.io"
_SA_PREFIX = "system:serviceaccount:"
# A namespace is a DNS label, a service account name a DNS subdomain (serviceaccount.SplitUsername)
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

Headers = CIMultiDictProxy[str] | MultiDictProxy[str] | Mapping[str, str]


class ImpersonationForbidden(APIError):
    """The caller may not impersonate what ``attrs`` names: a 403 worded as kube's."""

    def __init__(self, attrs: Attributes, reason: str) -> None:
        status = forbidden_status(attrs, reason)
        super().__init__(403, "Forbidden", status["message"], status.get("details"))


@dataclass(frozen=True)
class _Request:
    """One thing to impersonate, with the attributes that authorize it."""

    resource: str
    name: str
    namespace: str = ""
    group: str = ""
    subresource: str = ""


def wants_impersonation(headers: Headers) -> bool:
    """Whether any ``Impersonate-*`` header is present (the cheap test on every request)."""
    return any(k.lower().startswith("impersonate-") for k in headers)


def _getall(headers: Headers, name: str) -> list[str]:
    if isinstance(headers, CIMultiDictProxy | MultiDictProxy):
        return list(headers.getall(name, []))
    return [v for k, v in headers.items() if k.lower() == name.lower()]


def _service_account(user: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a service-account user name, as ``SplitUsername`` accepts it."""
    if not user.startswith(_SA_PREFIX):
        return None
    parts = user[len(_SA_PREFIX):].split(":")
    if len(parts) != 2:
        return None
    ns, name = parts
    if not (_LABEL.fullmatch(ns) and len(ns) <= 63 and _SUBDOMAIN.fullmatch(name)
            and len(name) <= 253):
        return None
    return ns, name


def _requests(headers: Headers) -> list[_Request]:
    """What the headers ask to impersonate, in kube's order (user, groups, extras, uid)."""
    out: list[_Request] = []
    users = _getall(headers, USER_HEADER)
    user = users[0] if users else ""
    if user:
        sa = _service_account(user)
        out.append(_Request("serviceaccounts", sa[1], namespace=sa[0]) if sa
                   else _Request("users", user))
    groups = _getall(headers, GROUP_HEADER)
    out += [_Request("groups", g) for g in groups]
    extras = [(k, v) for k, v in headers.items() if k.lower().startswith(EXTRA_PREFIX)]
    for key, value in extras:
        # the key is %-encoded in the header name (RFC 7230 tokens); kube records it decoded
        extra_key = _extra_key(key[len(EXTRA_PREFIX):].lower())
        out.append(_Request("userextras", value, group=_AUTHENTICATION, subresource=extra_key))
    uids = _getall(headers, UID_HEADER)
    uid = uids[0] if uids else ""
    if uid:
        out.append(_Request("uids", uid, group=_AUTHENTICATION))
    if not user and (groups or extras or uid):
        asked = ", ".join(f"{r.resource} {r.name!r}" for r in out)
        raise BadRequest(f"requested {asked} without impersonating a user")
    return out


def _extra_key(encoded: str) -> str:
    """An extra key from its %-encoded header form; kept as sent when it does not decode."""
    try:
        return unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        return encoded


def impersonate(requestor: UserInfo, headers: Headers, authorizer: Authorizer) -> UserInfo | None:
    """The identity ``requestor`` asks to act as, or None when no impersonation is asked.

    Raises :class:`ImpersonationForbidden` (403) at the first thing ``requestor`` may not
    impersonate, and BadRequest (400) for groups, a uid or extras without a user.  Nothing is
    granted by being asked for: every user, group, uid and extra value is authorized.
    """
    requests = _requests(headers)
    if not requests:
        return None
    groups_given = bool(_getall(headers, GROUP_HEADER))
    name, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for r in requests:
        attrs = Attributes(user=requestor, verb="impersonate", is_resource_request=True,
                           namespace=r.namespace, api_group=r.group, api_version="v1",
                           resource=r.resource, subresource=r.subresource, name=r.name)
        decision = authorizer.authorize(attrs)
        if not decision.allowed:
            raise ImpersonationForbidden(attrs, decision.reason)
        if r.resource == "serviceaccounts":
            name = f"{_SA_PREFIX}{r.namespace}:{r.name}"
            if not groups_given:
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{r.namespace}"]
        elif r.resource == "users":
            name = r.name
        elif r.resource == "groups":
            groups.append(r.name)
        elif r.resource == "userextras":
            extra.setdefault(r.subresource, []).append(r.name)
        else:
            uid = r.name
    if name != ANONYMOUS:
        if ALL_AUTHENTICATED not in groups and ALL_UNAUTHENTICATED not in groups:
            groups.append(ALL_AUTHENTICATED)
    elif ALL_UNAUTHENTICATED not in groups:
        groups.append(ALL_UNAUTHENTICATED)
    return UserInfo(name=name, groups=tuple(dict.fromkeys(groups)), uid=uid,
                    extra=MappingProxyType({k: tuple(v) for k, v in extra.items()}))


def describe(user: UserInfo) -> str:
    """``name[group,group]`` as kube's httplog writes an identity."""
    groups = f"[{','.join(user.groups)}]" if user.groups else ""
    return f"{user.name or '<empty>'}{groups}"
