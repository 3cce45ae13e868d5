"""The request pipeline, written out once, in order (apiserver ``DefaultBuildHandlerChain``):

1. errors → Status: every :class:`APIError` becomes a ``Status`` body, anything else a 500;
2. request info: what the URL and verb address (:func:`parse_request_info`);
3. authentication: the verified client certificate (CN = user, O = groups, plus
   ``system:authenticated``), else a service-account token (``Authorization: Bearer``);
   neither → 401;
4. impersonation: ``Impersonate-*`` headers switch to the identity they name, once the
   caller is authorized to ``impersonate`` each part of it (:mod:`.impersonation`); who acted
   as whom is logged on ``ketch.apiserver.audit``;
5. authorization: RBAC (``system:masters`` bypasses it); denied → 403 with Kubernetes'
   Forbidden message.

Decoding, admission, validation and storage follow in the handlers (:mod:`resources`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from certs.authority import CertsError
from certs.tls import peer_identity
from control.api.errors import APIError, BadRequest, InternalError, Unauthorized
from control.apiserver.rbac import (
    ALL_AUTHENTICATED,
    Authorizer,
    UserInfo,
    attributes_from_request,
    forbidden_status,
)
from control.apiserver.requestinfo import RequestInfo, parse_request_info

from .codec import respond
from .flowcontrol import QUEUE_WAIT
from .impersonation import describe, impersonate, wants_impersonation

__all__ = ["INFO", "USER", "Metrics", "TokenAuthenticator", "authenticate", "authenticate_any",
           "pipeline"]

#: What the pipeline learned of a request, for the handlers.
INFO: web.RequestKey[RequestInfo] = web.RequestKey("info", RequestInfo)
USER: web.RequestKey[UserInfo] = web.RequestKey("user", UserInfo)

log = logging.getLogger("ketch.apiserver")
audit = logging.getLogger("ketch.apiserver.audit")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """apiserver_request_total, apiserver_request_duration_seconds and its SLI without the
    flow-control wait, per verb/resource(/code)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("apiserver_request_total", "Requests by verb, resource, code",
                                ("verb", "resource", "code"), registry=self.registry)
        self.latency = Histogram(
            "apiserver_request_duration_seconds", "Request latency (watches excluded)",
            ("verb", "resource"), registry=self.registry,
            buckets=_LATENCY_BUCKETS)
        # The SLI of kube's API call latency SLO: the same without the wait in flow
        # control's queues (kube leaves webhooks out too; ketch calls none).
        self.sli_latency = Histogram(
            "apiserver_request_sli_duration_seconds",
            "Request latency without the wait in flow control's queues (watches excluded)",
            ("verb", "resource"), registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.watchers = Gauge("apiserver_registered_watchers", "Open watches on the watch cache",
                              registry=self.registry)
        self.watch_events = Counter("apiserver_watch_events_total",
                                    "Watch events written to watchers' connections",
                                    registry=self.registry)
        self.watch_delay = Histogram(
            "apiserver_watch_event_delay_seconds",
            "From the watch cache taking an event from the store to its write to a watcher",
            registry=self.registry,
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))

    def watch_delivered(self, received: float) -> None:
        self.watch_events.inc()
        self.watch_delay.observe(time.monotonic() - received)


# The identity of each TLS connection, read from its certificate once (parsing the peer
# certificate on every request was ~4% of a create); entries go with their connections.
_IDENTITIES: weakref.WeakKeyDictionary[ssl.SSLObject, UserInfo | str] = \
    weakref.WeakKeyDictionary()


def authenticate(request: web.Request, *, quiet: bool = False) -> UserInfo:
    """The user of a request: its verified client certificate, or 401 — logged once per
    connection with the reason (a foreign CA, an expired certificate, none at all), as
    kube-apiserver's "Unable to authenticate the request", unless ``quiet`` (another
    credential is still to be tried)."""
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_obj is not None and (known := _IDENTITIES.get(ssl_obj)) is not None:
        if isinstance(known, str):
            raise Unauthorized()
        return known
    try:
        cn, orgs = peer_identity(ssl_obj)
    except CertsError as e:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not quiet:
            log.warning("unable to authenticate the request from %s (%s %s): %s",
                        _address(peer), request.method, request.path, e)
        if ssl_obj is not None:
            _IDENTITIES[ssl_obj] = str(e)
        raise Unauthorized() from None
    groups = tuple(dict.fromkeys((*orgs, ALL_AUTHENTICATED)))
    user = UserInfo(name=cn, groups=groups)
    if ssl_obj is not None:
        _IDENTITIES[ssl_obj] = user
    return user


def _check_utf8(request: web.Request) -> None:
    """A URL whose %-decoded path or query is not UTF-8 (aiohttp keeps such bytes as lone
    surrogates) is a 400: no name, namespace or selector can hold it."""
    for text in (request.path, request.query_string):
        try:
            text.encode()
        except UnicodeEncodeError:
            raise BadRequest("the request URL is not valid UTF-8") from None
    for k, v in request.query.items():
        try:
            k.encode(), v.encode()
        except UnicodeEncodeError:
            raise BadRequest("the request URL is not valid UTF-8") from None


def _address(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "an unknown address"


def _impersonated(request: web.Request, user: UserInfo, authorizer: Authorizer) -> UserInfo:
    """The identity the request's Impersonate-* headers name (403/400 as :func:`impersonate`),
    logged with the real caller."""
    try:
        acting = impersonate(user, request.headers, authorizer)
    except APIError as e:
        audit.info("%s was refused impersonation on %s %s: %s", describe(user), request.method,
                   request.path, e.message)
        raise
    if acting is None:
        return user
    audit.info("%s is impersonating %s: %s %s", describe(user), describe(acting),
               request.method, request.path_qs)
    return acting


#: Checks a bearer token (a service-account token): its user, or Unauthorized.
TokenAuthenticator = Callable[[str], Awaitable[UserInfo]]


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate_any(request: web.Request, tokens: TokenAuthenticator | None) -> UserInfo:
    """The client certificate first, then a bearer token (kube's union authenticator tries
    x509 before tokens); 401 if neither stands for a user."""
    token = _bearer(request) if tokens is not None else None
    try:
        return authenticate(request, quiet=token is not None)
    except Unauthorized:
        if token is None or tokens is None:
            raise
        return await tokens(token)


def pipeline(authorizer: Authorizer, metrics: Metrics, *, tokens: TokenAuthenticator | None = None
             ) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        info: RequestInfo | None = None
        code = 500
        try:
            _check_utf8(request)
            query = {k: request.query.getall(k) for k in request.query}
            info = parse_request_info(request.method, request.path, query)
            user = await authenticate_any(request, tokens)
            if wants_impersonation(request.headers):
                user = _impersonated(request, user, authorizer)
            attrs = attributes_from_request(user, info)
            decision = authorizer.authorize(attrs)
            if not decision.allowed:
                code = 403
                return respond(forbidden_status(attrs, decision.reason), 403)
            request[INFO], request[USER] = info, user
            resp = await handler(request)
            code = resp.status
            return resp
        except APIError as e:
            code = e.code
            headers = {}
            retry = e.details.get("retryAfterSeconds")
            if retry:
                headers["Retry-After"] = str(retry)
            return respond(e.to_status(), e.code, headers=headers)
        except web.HTTPException:
            raise
        except asyncio.CancelledError:  # the client left and aiohttp cancelled the handler
            code = 499
            raise
        except ConnectionResetError:  # the client left mid-request (its timeout): not a bug
            code = 499
            log.debug("client went away during %s %s", request.method, request.path)
            return web.Response(status=499)
        except Exception as e:  # a bug: answer a Status, keep serving, log the trace
            log.exception("internal error serving %s %s", request.method, request.path)
            return respond(InternalError(e).to_status(), 500)
        finally:
            verb = info.verb if info else request.method.lower()
            resource = info.resource if info and info.is_resource_request else ""
            metrics.requests.labels(verb, resource, str(code)).inc()
            if verb != "watch":
                took = time.perf_counter() - started
                metrics.latency.labels(verb, resource).observe(took)
                metrics.sli_latency.labels(verb, resource).observe(
                    took - request.get(QUEUE_WAIT, 0.0))

    return middleware
