"""Bound service-account tokens: issued by TokenRequest, accepted as ``Authorization: Bearer``.

A token is an ES256 JWT signed with the cluster's service-account key (``certs/sa.key``, the
same on every apiserver) carrying Kubernetes' claims: ``iss``, ``sub``
(``system:serviceaccount:NS:NAME``), ``aud``, ``exp``/``iat``/``nbf``, ``jti`` and
``kubernetes.io`` (namespace, service account name and uid, and the pod, secret or node it is
bound to).  :meth:`TokenIssuer.authenticate` accepts one only if this key signed it, it names
this issuer and one of the apiserver's audiences, it is within its lifetime (a minute's
leeway, as kube), and the service account and bound object still exist with the uids it names
(a pod deleted more than a minute ago no longer counts); otherwise 401 ``Unauthorized``.  The
user is the service account, in ``system:serviceaccounts`` and ``system:serviceaccounts:NS``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from control.api.errors import Unauthorized
from control.apiserver.rbac import ALL_AUTHENTICATED, UserInfo

from . import jwt

__all__ = ["ISSUER", "SERVICE_ACCOUNTS_GROUP", "BoundObject", "TokenIssuer"]

ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
LEEWAY = 60
_BOUND = {"Pod": "pod", "Secret": "secret", "Node": "node"}
_RESOURCES = {"pod": "pods", "secret": "secrets", "node": "nodes"}

#: (group, resource, namespace, name) -> the object from the apiserver's cache (or None).
Lookup = Callable[[str, str, str, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class BoundObject:
    kind: str  # Pod, Secret or Node
    name: str
    uid: str


class TokenIssuer:
    """Signs and checks tokens for one cluster; ``audiences`` are those this apiserver
    accepts (``--api-audiences``; the issuer by default)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str = ISSUER,
                 audiences: tuple[str, ...] = (ISSUER,)) -> None:
        self.key = key
        self.public = key.public_key()
        self.issuer = issuer
        self.audiences = audiences

    def issue(self, *, namespace: str, account: str, account_uid: str,
              audiences: list[str], expiration_seconds: int, now: dt.datetime,
              bound: BoundObject | None = None, node: BoundObject | None = None
              ) -> tuple[str, dt.datetime]:
        """A token and its expiry time."""
        iat = int(now.timestamp())
        exp = iat + expiration_seconds
        private: dict[str, Any] = {"namespace": namespace,
                                   "serviceaccount": {"name": account, "uid": account_uid}}
        if bound is not None:
            private[_BOUND[bound.kind]] = {"name": bound.name, "uid": bound.uid}
        if node is not None and "node" not in private:
            private["node"] = {"name": node.name, "uid": node.uid}
        claims = {"aud": list(audiences), "exp": exp, "iat": iat, "iss": self.issuer,
                  "jti": str(uuid.uuid4()), "kubernetes.io": private, "nbf": iat,
                  "sub": f"system:serviceaccount:{namespace}:{account}"}
        return jwt.sign(claims, self.key), dt.datetime.fromtimestamp(exp, dt.UTC)

    async def authenticate(self, token: str, lookup: Lookup, now: dt.datetime) -> UserInfo:
        """The service account ``token`` stands for; :class:`Unauthorized` if it does not
        stand for one now."""
        try:
            claims = jwt.verify(token, self.public)
        except jwt.InvalidToken:
            raise Unauthorized() from None
        t = now.timestamp()
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        private = claims.get("kubernetes.io")
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
        if claims.get("iss") != self.issuer or not set(auds) & set(self.audiences) \
                or not isinstance(exp, int | float) or t > exp + LEEWAY \
                or not isinstance(nbf, int | float) or t < nbf - LEEWAY \
                or not isinstance(private, dict):
            raise Unauthorized()
        namespace = str(private.get("namespace") or "")
        account = private.get("serviceaccount") or {}
        sa = await lookup("", "serviceaccounts", namespace, str(account.get("name") or ""))
        if sa is None or (sa.get("metadata") or {}).get("uid") != account.get("uid"):
            raise Unauthorized()
        extra: dict[str, tuple[str, ...]] = {}
        for field, resource in _RESOURCES.items():
            ref = private.get(field)
            if not isinstance(ref, dict):
                continue
            obj = await lookup("", resource, "" if field == "node" else namespace,
                               str(ref.get("name") or ""))
            meta = (obj or {}).get("metadata") or {}
            if obj is None or meta.get("uid") != ref.get("uid") or _deleted_long_ago(meta, t):
                raise Unauthorized()
            extra[f"authentication.kubernetes.io/{field}-name"] = (str(ref["name"]),)
            extra[f"authentication.kubernetes.io/{field}-uid"] = (str(ref["uid"]),)
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = (f"JTI={claims['jti']}",)
        return UserInfo(name=f"system:serviceaccount:{namespace}:{account['name']}",
                        uid=str(account.get("uid") or ""),
                        groups=(SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}",
                                ALL_AUTHENTICATED),
                        extra=extra)

    # --- discovery of the issuer -------------------------------------------------------------

    def openid_configuration(self, server_url: str) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": f"{server_url}/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"]}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [jwt.jwk(self.public)]}


def _deleted_long_ago(meta: dict[str, Any], now: float) -> bool:
    stamp = meta.get("deletionTimestamp")
    if not stamp:
        return False
    try:
        when = dt.datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return True
    return when + LEEWAY < now
