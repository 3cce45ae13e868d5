"""The whole-cluster workload of ``ketch chaos run --cluster``: apps that the controllers,
scheduler and node agents must keep running while faults happen, a client that changes them
during each fault, and probes of their Services through the node agents' service proxies.

In namespace ``chaos-apps``: Deployments ``web`` (nginx, maxSurge 1, maxUnavailable 0) and
``api`` (httpd, 25 %/25 %), each behind a NodePort Service; a bare ReplicaSet ``cache``
(ketch/echo, no Deployment above it); StatefulSet ``db`` (ketch/echo,
ordered, behind a headless Service); Jobs ``batch-N`` with completions, alternately Indexed
(``podReplacementPolicy: Failed``: an index is never run twice at once) and not.  Every pod has
a readiness probe and a 2 s grace period; Job pods restart in place on failure.

Actions (client 500; ``k_*`` ops; an outcome the client cannot know is "unknown"): scale and
roll (image change; never back to the image a burst of changes began with) a Deployment,
scale the ReplicaSet up by one twice in quick succession
(a second reason to sync before the first's pods show: what expectations are for; at 3 or
more it goes back to 1), scale and roll the StatefulSet, create a Job, delete the oldest
finished Jobs.  :meth:`ClusterWorkload.mutate` does a few during a fault; between faults
nothing changes, so the runner can time how long the cluster takes to converge.  Probes
(client 510, ``k_probe``, key ``SERVICE@NODE``): an HTTP GET of each NodePort Service on each
node's address, once a second each — a read: "ok" for a 200, else "fail".
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from control.api.errors import APIError
from control.client import ApiClient, ClientConfig
from control.client import resources as R
from control.client.errors import Unreachable

from .apiserver import ApiServers
from .components import Components
from .history import History, Status

__all__ = ["ACTIONS", "CLIENT", "NAMESPACE", "PROBER", "ClusterWorkload"]

NAMESPACE = "chaos-apps"
CLIENT = 500
PROBER = 510
ACTIONS = ("scale-deployment", "roll-deployment", "scale-replicaset", "scale-statefulset",
           "roll-statefulset", "create-job", "delete-jobs")
_DEPLOYMENTS = {"web": ("nginx", 80, (1, 4), {"maxSurge": 1, "maxUnavailable": 0}),
                "api": ("httpd", 80, (1, 3), {"maxSurge": "25%", "maxUnavailable": "25%"})}
_TAGS = {"nginx": ("1.25", "1.26", "1.27"), "httpd": ("2.4.58", "2.4.62", "2.4.63"),
         "ketch/echo": ("1", "2", "3", "4")}
_KEEP_JOBS = 3
Obj = dict[str, Any]


def _labels(app: str) -> dict[str, str]:
    return {"app": app}


def _pod_spec(container: Obj) -> Obj:
    return {"containers": [container], "terminationGracePeriodSeconds": 2}


def _server(name: str, image: str, port: int) -> Obj:
    return {"name": name, "image": image, "ports": [{"containerPort": port}],
            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1,
                               "failureThreshold": 2}}


def deployment(name: str, image: str) -> Obj:
    base, port, (low, _high), strategy = _DEPLOYMENTS[name]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": low + 1, "selector": {"matchLabels": _labels(name)},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
                     "minReadySeconds": 0, "template": {
                         "metadata": {"labels": _labels(name)},
                         "spec": _pod_spec(_server(base.split("/")[-1], image, port))}}}


def replicaset(image: str) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "cache", "namespace": NAMESPACE},
            "spec": {"replicas": 2, "selector": {"matchLabels": _labels("cache")},
                     "template": {"metadata": {"labels": _labels("cache")},
                                  "spec": _pod_spec(_server("echo", image, 8080))}}}


def statefulset(image: str) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": NAMESPACE},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": _labels("db")},
                     "template": {"metadata": {"labels": _labels("db")},
                                  "spec": _pod_spec(_server("echo", image, 8080))}}}


def job(n: int, rng: random.Random) -> Obj:
    indexed = n % 2 == 0
    completions = 3 if indexed else 2
    spec: Obj = {"completions": completions, "parallelism": 2, "backoffLimit": 50,
                 "template": {"metadata": {"labels": {"job": f"batch-{n}"}},
                              "spec": {"restartPolicy": "OnFailure",
                                       "terminationGracePeriodSeconds": 2,
                                       "containers": [{"name": "work", "image": "busybox",
                                                       "command": ["sleep", str(rng.choice(
                                                           (1, 2, 3)))]}]}}}
    if indexed:
        spec.update(completionMode="Indexed", podReplacementPolicy="Failed")
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"batch-{n}", "namespace": NAMESPACE}, "spec": spec}


def service(name: str, port: int, *, headless: bool = False) -> Obj:
    spec: Obj = {"selector": _labels(name), "ports": [{"port": port, "targetPort": port}]}
    if headless:
        spec["clusterIP"] = "None"
    else:
        spec["type"] = "NodePort"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


class ClusterWorkload:
    """Creates the apps (:meth:`setup`), changes them (:meth:`mutate`) and probes them
    (:meth:`run_probes`), recording every action in ``history``."""

    def __init__(self, servers: ApiServers, components: Components, history: History, *,
                 seed: int, op_timeout: float = 5.0) -> None:
        self._servers = servers
        self._components = components
        self.history = history
        self._rng = random.Random(seed ^ 0xC1A5)
        self._timeout = op_timeout
        self._jobs = 0
        self._images = {"web": "nginx:1.25", "api": "httpd:2.4.58", "db": "ketch/echo:1"}
        self._burst_start = dict(self._images)  # images when the current mutate began
        self.node_ports: dict[str, int] = {}  # service -> nodePort
        self.allowed: tuple[str, ...] = ACTIONS  # what mutate draws from
        self.actions = 0
        self.notes: list[str] = []

    def client(self, *, retries: bool = False) -> ApiClient:
        config = ClientConfig(tuple(s.url for s in self._servers.servers),
                              self._servers.ssl_context(), "admin")
        return ApiClient(config, user_agent="ketch-chaos-cluster/1", retries=retries,
                         timeout=self._timeout, attempt_timeout=self._timeout)

    # --- recording -------------------------------------------------------------------------

    async def _record(self, kind: str, key: str, input: Obj, call: Any) -> tuple[Status, Any]:
        op = self.history.record_invoke(CLIENT, kind, key, input, at=time.monotonic())
        status: Status
        output: Obj
        try:
            async with asyncio.timeout(self._timeout):
                out = await call
            status, output = "ok", {}
        except Unreachable as e:  # nothing was sent
            status, output, out = "fail", {"error": str(e)[:200]}, None
        except APIError as e:
            status = "fail" if 400 <= e.code < 500 and e.code != 408 else "unknown"
            output, out = {"code": e.code, "reason": str(e)[:200]}, None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            status, output, out = "unknown", {"error": f"{type(e).__name__} {e}"[:200]}, None
        self.history.record_complete(op, status, output, at=time.monotonic())
        self.actions += 1
        return status, out

    # --- set-up ------------------------------------------------------------------------------

    async def setup(self, deadline: float = 60.0) -> None:
        """Namespace, Services, Deployments and the StatefulSet (retried until created)."""
        until = time.monotonic() + deadline
        async with self.client(retries=True) as c:
            objects: list[tuple[Any, Obj]] = [
                (R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": NAMESPACE}}),
                (R.SERVICES, service("web", 80)), (R.SERVICES, service("api", 80)),
                (R.SERVICES, service("db", 8080, headless=True)),
                (R.DEPLOYMENTS, deployment("web", self._images["web"])),
                (R.DEPLOYMENTS, deployment("api", self._images["api"])),
                (R.REPLICASETS, replicaset("ketch/echo:1")),
                (R.STATEFULSETS, statefulset(self._images["db"])),
                (R.JOBS, job(0, self._rng))]  # an Indexed Job from the start
            for res, obj in objects:
                while True:
                    try:
                        await c.create(res, obj)
                        break
                    except APIError as e:
                        if e.code == 409:
                            break
                        if time.monotonic() > until:
                            raise RuntimeError(f"cannot create {res} "
                                               f"{obj['metadata']['name']}: {e}") from e
                        await asyncio.sleep(0.3)
            for name in ("web", "api"):
                svc = await c.get(R.SERVICES, name, NAMESPACE)
                self.node_ports[name] = int(svc["spec"]["ports"][0]["nodePort"])

    # --- actions -------------------------------------------------------------------------------

    async def mutate(self, rng: random.Random, count: int, spread: float) -> None:
        """``count`` random actions, spread over ``spread`` seconds."""
        self._burst_start = dict(self._images)
        async with self.client() as c:
            for _ in range(count):
                await asyncio.sleep(rng.uniform(0, spread / max(count, 1)))
                await self.act(c, rng.choice(self.allowed), rng)

    async def act(self, c: ApiClient, action: str, rng: random.Random) -> None:
        if action == "scale-deployment":
            name = rng.choice(sorted(_DEPLOYMENTS))
            low, high = _DEPLOYMENTS[name][2]
            n = rng.randint(low, high)
            await self._record("k_scale", f"deployment/{name}", {"replicas": n}, c.patch(
                R.DEPLOYMENTS, name, {"spec": {"replicas": n}}, NAMESPACE))
        elif action == "roll-deployment":
            name = rng.choice(sorted(_DEPLOYMENTS))
            base, port = _DEPLOYMENTS[name][0], _DEPLOYMENTS[name][1]
            image = self._next_image(name, base, rng)
            patch = {"spec": {"template": {"spec": {"containers": [
                _server(base.split("/")[-1], image, port)]}}}}
            await self._record("k_roll", f"deployment/{name}", {"image": image},
                               c.patch(R.DEPLOYMENTS, name, patch, NAMESPACE))
        elif action == "scale-replicaset":
            await self._step_replicaset(c)
        elif action == "scale-statefulset":
            n = rng.randint(2, 3)
            await self._record("k_scale", "statefulset/db", {"replicas": n}, c.patch(
                R.STATEFULSETS, "db", {"spec": {"replicas": n}}, NAMESPACE))
        elif action == "roll-statefulset":
            image = self._next_image("db", "ketch/echo", rng)
            patch = {"spec": {"template": {"spec": {"containers": [
                _server("echo", image, 8080)]}}}}
            await self._record("k_roll", "statefulset/db", {"image": image},
                               c.patch(R.STATEFULSETS, "db", patch, NAMESPACE))
        elif action == "create-job":
            self._jobs += 1
            body = job(self._jobs, rng)
            await self._record("k_job_create", f"job/batch-{self._jobs}",
                               {"completions": body["spec"]["completions"],
                                "indexed": "completionMode" in body["spec"]},
                               c.create(R.JOBS, body))
        else:
            await self._delete_old_jobs(c)

    async def _step_replicaset(self, c: ApiClient, gap: float = 0.3) -> None:
        try:
            n = int(((await c.get(R.REPLICASETS, "cache", NAMESPACE)).get("spec") or {}).get(
                "replicas") or 0)
        except (APIError, TimeoutError, aiohttp.ClientError, OSError):
            return
        steps = [1] if n >= 3 else [n + 1, n + 2]
        for i, target in enumerate(steps):
            if i:
                await asyncio.sleep(gap)
            await self._record("k_scale", "replicaset/cache", {"replicas": target}, c.patch(
                R.REPLICASETS, "cache", {"spec": {"replicas": target}}, NAMESPACE))

    def _next_image(self, name: str, base: str, rng: random.Random) -> str:
        # never the image it has, nor the one it had when this burst of changes began: two
        # quick rolls that end where they started would change nothing
        avoid = {self._images[name], self._burst_start[name]}
        image = f"{base}:{rng.choice([t for t in _TAGS[base] if f'{base}:{t}' not in avoid])}"
        self._images[name] = image  # the client's intent; convergence reads the API's
        return image

    async def _delete_old_jobs(self, c: ApiClient) -> None:
        status, jobs = await self._record("k_list", "jobs", {}, c.list(R.JOBS, NAMESPACE))
        if status != "ok":
            return
        items = sorted(jobs.get("items") or [], key=lambda j: j["metadata"].get(
            "creationTimestamp") or "")
        finished = [j for j in items if any(
            cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True"
            for cond in (j.get("status") or {}).get("conditions") or [])]
        for j in finished[:max(0, len(items) - _KEEP_JOBS)]:
            name = j["metadata"]["name"]
            await self._record("k_job_delete", f"job/{name}", {}, c.delete(
                R.JOBS, name, NAMESPACE, propagation_policy="Background"))

    # --- probes --------------------------------------------------------------------------------

    def targets(self) -> list[tuple[str, str, str]]:
        """(service, node, URL) of every NodePort Service on every node."""
        return [(svc, n.name, f"http://{n.address}:{port}/")
                for svc, port in sorted(self.node_ports.items())
                for n in self._components.of("node")]

    async def probe(self, session: aiohttp.ClientSession, svc: str, node: str, url: str,
                    *, record: bool = True) -> bool:
        op = self.history.record_invoke(PROBER, "k_probe", f"{svc}@{node}", {},
                                        at=time.monotonic()) if record else None
        out: Obj
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                await r.read()
                ok, out = r.status == 200, {"code": r.status}
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            ok, out = False, {"error": type(e).__name__}
        if op is not None:
            self.history.record_complete(op, "ok" if ok else "fail", out, at=time.monotonic())
        return ok

    async def run_probes(self, stop: asyncio.Event, every: float = 1.0) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                started = time.monotonic()
                await asyncio.gather(*(self.probe(session, *t) for t in self.targets()))
                with_rest = every - (time.monotonic() - started)
                if with_rest > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), with_rest)
                    except TimeoutError:
                        pass
