"""``POST serviceaccounts/NAME/token`` (TokenRequest), and the issuer's discovery documents
(``/.well-known/openid-configuration``, ``/openid/v1/jwks``).

As kube-apiserver's token REST: the account must exist; ``expirationSeconds`` defaults to an
hour and may not be under ten minutes; ``audiences`` default to the apiserver's; a
``boundObjectRef`` (a Pod, Secret or Node of ``v1``) must exist and match its uid, and a pod's
node is bound too.  Admission sees the request (NodeRestriction lets a node ask only for pods
bound to it).  Nothing is stored; the answer is 201 with ``status.token`` and
``status.expirationTimestamp``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from control.api.errors import APIError, BadRequest, Conflict, Invalid, NotFound
from control.apiserver.admission import AdmissionRequest
from control.apiserver.rbac import UserInfo
from control.apiserver.requestinfo import RequestInfo
from control.apiserver.strategies.causes import invalid, not_supported

from .tokens import BoundObject, TokenIssuer

if TYPE_CHECKING:
    from control.apiserver.state import APIState

__all__ = ["discovery_document", "issue_token"]

DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
_BOUND_RESOURCES = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


def _issuer(api: APIState) -> TokenIssuer:
    if api.tokens is None:
        raise APIError(503, "ServiceUnavailable", "this apiserver has no service-account "
                       "signing key (certs/sa.key): run `ketch certs init` and restart it")
    return api.tokens


async def issue_token(api: APIState, info: RequestInfo, user: UserInfo,
                      body: dict[str, Any]) -> dict[str, Any]:
    """The TokenRequest answer for service account ``info.name`` in ``info.namespace``."""
    issuer = _issuer(api)
    if body.get("kind", "TokenRequest") != "TokenRequest":
        raise BadRequest(f"not a TokenRequest: {body.get('kind')}")
    spec = dict(body.get("spec") or {})
    expiration = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
    causes = []
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        causes.append(invalid("spec.expirationSeconds", expiration, "must be an integer"))
    elif expiration < MIN_EXPIRATION:
        causes.append(invalid("spec.expirationSeconds", expiration,
                              "may not specify a duration less than 10 minutes"))
    elif expiration > MAX_EXPIRATION:
        causes.append(invalid("spec.expirationSeconds", expiration,
                              "may not specify a duration larger than 2^32 seconds"))
    ref = spec.get("boundObjectRef")
    if ref is not None and (not isinstance(ref, dict) or ref.get("kind") not in _BOUND_RESOURCES
                            or ref.get("apiVersion", "v1") != "v1"):
        causes.append(not_supported("spec.boundObjectRef.kind", (ref or {}).get("kind"),
                                    sorted(_BOUND_RESOURCES)))
    if causes:
        raise Invalid("TokenRequest", info.name, causes, group="authentication.k8s.io")
    spec["expirationSeconds"] = expiration
    spec["audiences"] = list(spec.get("audiences") or issuer.audiences)
    account = await api.view.get_fresh("", "serviceaccounts", info.namespace, info.name)
    if account is None:
        raise NotFound("serviceaccounts", info.name)
    bound = node = None
    if isinstance(ref, dict):
        resource = _BOUND_RESOURCES[ref["kind"]]
        ns = "" if resource == "nodes" else info.namespace
        obj = await api.view.get_fresh("", resource, ns, str(ref.get("name") or ""))
        if obj is None:
            raise NotFound(resource, str(ref.get("name") or ""))
        uid = obj["metadata"].get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise Conflict(ref["kind"], ref["name"], why=(
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                "in record. The object might have been deleted and then recreated"))
        bound = BoundObject(ref["kind"], ref["name"], uid)
        node_name = (obj.get("spec") or {}).get("nodeName") if resource == "pods" else None
        if node_name:
            n = await api.view.get_fresh("", "nodes", "", node_name)
            if n is not None:
                node = BoundObject("Node", node_name, n["metadata"].get("uid", ""))
    req = AdmissionRequest(operation="CREATE", group="", version="v1",
                           resource="serviceaccounts", subresource="token", kind="TokenRequest",
                           namespace=info.namespace, name=info.name,
                           obj={**body, "spec": spec}, old_obj=None, user=user)
    await api.registry.admission.admit(req, api.view)
    await api.registry.admission.validate(req, api.view)
    now = api.inputs.now()
    token, expires = issuer.issue(
        namespace=info.namespace, account=info.name,
        account_uid=account["metadata"].get("uid", ""), audiences=spec["audiences"],
        expiration_seconds=expiration, now=now, bound=bound, node=node)
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": info.name, "namespace": info.namespace,
                         "creationTimestamp": _time(now)},
            "spec": spec, "status": {"token": token, "expirationTimestamp": _time(expires)}}


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def discovery_document(api: APIState, path: str, server_url: str) -> web.Response | None:
    """The OIDC discovery or JWKS answer for ``path``, or None if it is neither."""
    path = path.rstrip("/")
    if path == "/.well-known/openid-configuration":
        return web.json_response(_issuer(api).openid_configuration(server_url))
    if path == "/openid/v1/jwks":
        return web.json_response(_issuer(api).jwks(), content_type="application/jwk-set+json")
    return None
