"""The cluster objects a pod refers to, for the pod workers (:class:`node.pods.sink.PodSources`):
ConfigMaps and Secrets (volumes, ``envFrom``, ``valueFrom``), Services (the ``*_SERVICE_HOST``
environment) and service-account tokens (the ``kube-api-access-*`` projected volume).

ConfigMaps and Secrets are read on demand and kept for a TTL (the kubelet's TTL cache
strategy): one GET serves every pod starting at once, a missing object is looked up again at
the next mount retry, and an update reaches a volume at its next refresh.  As the kubelet's
cache does, the first read is consistent (from the store) and a refresh of an object already
read asks for ``resourceVersion=0``, which the apiserver answers from its watch cache: at
1,000 nodes these refreshes were the busiest call of the benchmark.  The TTL is the
Node's ``node.alpha.kubernetes.io/ttl`` annotation, which the controller-manager's ttl
controller raises as the cluster grows (0 s up to 100 nodes, 30 s at 1,000, 300 s past 1,800),
but never less than ``min_ttl`` (2 s), so a burst of pods on one node shares its reads.  When the
apiserver cannot be reached the last copy is used, so a running pod's volumes stay as they are.
Services come from the agent's shared informer (the service proxy watches them too).

Tokens come from TokenRequest (``serviceaccounts/NAME/token``, bound to the pod) and are
renewed once 80 % of their lifetime has passed, as the kubelet's token manager does.  Until
the apiserver serves TokenRequest (it answers 404 for the subresource), pods get an empty
token file instead of being held in ContainerCreating, and a line in the log says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control.api.clock import Clock
from control.api.errors import APIError, MethodNotAllowed, NotFound
from control.api.objects import node_ttl_seconds
from control.client import ApiClient, Informer, Resource
from control.client import resources as R

__all__ = ["ClusterSources"]

log = logging.getLogger("ketch.node.sources")

_RENEW_FRACTION = 0.8


@dataclass(frozen=True)
class _Entry:
    value: Mapping[str, Any] | None
    at: float


@dataclass(frozen=True)
class _Token:
    token: str
    renew_at: float


class ClusterSources:
    def __init__(self, client: ApiClient, services: Informer, *, clock: Clock,
                 node: Callable[[], dict[str, Any] | None] = lambda: None,
                 min_ttl: float = 2.0) -> None:
        self.client = client
        self._services = services
        self.clock = clock
        self._node = node
        self.min_ttl = min_ttl
        self.token_requests_supported: bool | None = None
        self._objects: dict[tuple[str, str, str], _Entry] = {}
        self._inflight: dict[tuple[str, str, str], asyncio.Future[Mapping[str, Any] | None]] = {}
        self._tokens: dict[tuple[str, str, int], _Token] = {}

    # --- ConfigMaps and Secrets ---------------------------------------------------------------

    async def configmap(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return await self._get(R.CONFIGMAPS, namespace, name)

    async def secret(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return await self._get(R.SECRETS, namespace, name)

    def ttl(self) -> float:
        """How long a read ConfigMap or Secret is used before it is read again."""
        return max(self.min_ttl, node_ttl_seconds(self._node()) or 0)

    async def _get(self, res: Resource, namespace: str,
                   name: str) -> Mapping[str, Any] | None:
        key = (res.plural, namespace, name)
        entry = self._objects.get(key)
        if entry is not None and self.clock.monotonic() - entry.at < self.ttl():
            return entry.value
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[Mapping[str, Any] | None] = \
            asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        # A refresh of an object read before may be served from the apiserver's watch cache,
        # which follows the store; a first read or a missing object's is consistent.
        params = {"resourceVersion": "0"} if entry is not None and entry.value is not None \
            else None
        try:
            try:
                value: Mapping[str, Any] | None = await self.client.get(res, name, namespace,
                                                                         params=params)
            except NotFound:
                value = None
            except APIError as e:
                if entry is None:
                    raise
                log.info("%s %s/%s: using the copy from before (%s)", res.plural, namespace,
                         name, e)
                value = entry.value
            else:
                self._objects[key] = _Entry(value, self.clock.monotonic())
            fut.set_result(value)
            return value
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(e)
                fut.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[key]

    # --- Services -------------------------------------------------------------------------------

    def services(self) -> Sequence[Mapping[str, Any]]:
        return self._services.cache.items()

    # --- service-account tokens ---------------------------------------------------------------

    async def service_account_token(self, pod: Mapping[str, Any], *, audience: str,
                                    expiration_seconds: int) -> str | None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        key = (uid, audience, expiration_seconds)
        cached = self._tokens.get(key)
        if cached is not None and self.clock.monotonic() < cached.renew_at:
            return cached.token
        if self.token_requests_supported is False:
            return ""
        spec = pod.get("spec") or {}
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [audience] if audience else [],
                         "expirationSeconds": expiration_seconds,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                            "name": meta.get("name", ""), "uid": uid}}}
        try:
            answer = await self.client.create(R.SERVICEACCOUNTS, body, meta.get("namespace", ""),
                                              subresource="token", name=sa)
        except (NotFound, MethodNotAllowed) as e:
            if isinstance(e, NotFound) and e.details.get("kind") == "serviceaccounts":
                return cached.token if cached else None  # the service account is missing
            self._unsupported(e)
            return ""
        except APIError as e:
            log.info("token for pod %s/%s not issued (%s)", meta.get("namespace"),
                     meta.get("name"), e)
            return cached.token if cached else None
        self.token_requests_supported = True
        token = str((answer.get("status") or {}).get("token") or "")
        self._tokens[key] = _Token(token, self.clock.monotonic()
                                   + expiration_seconds * _RENEW_FRACTION)
        return token

    def _unsupported(self, e: APIError) -> None:
        if self.token_requests_supported is not False:
            log.warning("the apiserver does not serve TokenRequest (%s): pods get an empty "
                        "service-account token", e)
        self.token_requests_supported = False

    def forget_pod(self, uid: str) -> None:
        """The pod is gone: drop its tokens."""
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]
