"""Registering the agent's Node and learning its pod CIDR (the kubelet's
``registerWithAPIServer`` and its wait for ``spec.podCIDR``).

:func:`register` creates the Node with its status; if it exists already (a restarted agent, or
a node someone created by hand) it brings the agent's own labels up to date with a patch
guarded by resourceVersion, as the kubelet reconciles its default labels.  Transient failures
(no apiserver, 5xx, 429) are retried with back-off until they pass; a refusal (403, 422: a
label NodeRestriction forbids, a malformed name) raises :class:`RegistrationError` — retrying
cannot fix it.

:func:`wait_pod_cidr` waits for the controller-manager's node IPAM to set ``spec.podCIDR``;
when it has not after ``pod_cidr_wait`` seconds and a fallback CIDR is configured, the agent
sets it on its own Node (from empty only, guarded by resourceVersion, so a CIDR the
controller-manager set meanwhile wins).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from control.api.clock import Clock
from control.api.errors import AlreadyExists, APIError, Conflict, Forbidden, Invalid, NotFound
from control.client import ApiClient, Informer
from control.client import resources as R
from control.client.ratelimit import Backoff

from .config import AgentConfig

__all__ = ["RegistrationError", "register", "remembered_pod_cidr", "wait_pod_cidr"]

log = logging.getLogger("ketch.node.registration")


class RegistrationError(Exception):
    """The apiserver refuses this Node for good (its message says why)."""


def _fatal(e: APIError) -> bool:
    return isinstance(e, (Forbidden, Invalid)) or e.code in (400, 401)


async def register(client: ApiClient, node: dict[str, Any], *, clock: Clock,
                   backoff_cap: float = 7.0) -> dict[str, Any]:
    """The Node as stored once it is registered."""
    name = node["metadata"]["name"]
    backoff = Backoff(0.2, backoff_cap)
    while True:
        try:
            try:
                created = await client.create(R.NODES, node)
                log.info("registered node %s", name)
                return created
            except AlreadyExists:
                return await _reconcile(client, node)
        except APIError as e:
            if _fatal(e):
                raise RegistrationError(f"node {name} cannot register: {e}") from e
            delay = backoff.next()
            log.warning("registering node %s failed (%s); retrying in %.1fs", name, e, delay)
            await clock.sleep(delay)


async def _reconcile(client: ApiClient, node: dict[str, Any]) -> dict[str, Any]:
    """The existing Node, with the agent's labels set (other labels left alone)."""
    name = node["metadata"]["name"]
    while True:
        try:
            existing = await client.get(R.NODES, name)
        except NotFound:  # deleted between our create and this read: create again
            return await client.create(R.NODES, node)
        have = (existing.get("metadata") or {}).get("labels") or {}
        want = node["metadata"].get("labels") or {}
        missing = {k: v for k, v in want.items() if have.get(k) != v}
        if not missing:
            log.info("node %s was registered before; re-using it", name)
            return existing
        patch = {"metadata": {"resourceVersion": existing["metadata"]["resourceVersion"],
                              "labels": missing}}
        try:
            return await client.patch(R.NODES, name, patch)
        except Conflict:
            continue


def _pod_cidr(node: Mapping[str, Any] | None) -> str:
    spec = (node or {}).get("spec") or {}
    return str(spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), "") or "")


def remembered_pod_cidr(config: AgentConfig) -> str:
    """The pod CIDR a previous run of this agent used ("" if none)."""
    try:
        with open(config.state_path) as f:
            return str(json.load(f).get("podCIDR") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def _remember(config: AgentConfig, cidr: str) -> None:
    tmp = config.state_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"podCIDR": cidr}, f)
    os.replace(tmp, config.state_path)


async def wait_pod_cidr(client: ApiClient, nodes: Informer, config: AgentConfig, *,
                        clock: Clock) -> str:
    """The Node's pod CIDR once it has one (see the module docstring)."""
    changed = asyncio.Event()
    nodes.add_handler(on_add=lambda _n: changed.set(), on_update=lambda _o, _n: changed.set())
    deadline = clock.monotonic() + config.pod_cidr_wait
    told = False
    while True:
        changed.clear()
        cidr = _pod_cidr(nodes.cache.get(config.name))
        if cidr:
            break
        left = deadline - clock.monotonic()
        if config.pod_cidr and left <= 0:
            cidr = await _claim(client, config)
            if cidr:
                break
            left = 1.0
        if not told:
            told = True
            log.info("node %s waits for the controller-manager to assign its pod CIDR%s",
                     config.name, f" (else {config.pod_cidr} after {config.pod_cidr_wait:.0f}s)"
                     if config.pod_cidr else "")
        await _either(changed, clock, left if config.pod_cidr else 30.0)
    if cidr != remembered_pod_cidr(config):
        _remember(config, cidr)
    log.info("node %s: pod CIDR %s", config.name, cidr)
    return cidr


async def _either(event: asyncio.Event, clock: Clock, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` pass on ``clock``."""
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(max(seconds, 0.0)))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()


async def _claim(client: ApiClient, config: AgentConfig) -> str:
    """Set the fallback CIDR on the Node if it still has none; the CIDR it has after ("" if
    the write failed: the caller looks again)."""
    try:
        node = await client.get(R.NODES, config.name)
        if _pod_cidr(node):
            return _pod_cidr(node)
        patched = await client.patch(R.NODES, config.name, {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "spec": {"podCIDR": config.pod_cidr, "podCIDRs": [config.pod_cidr]}})
        log.info("node %s: no pod CIDR from the controller-manager; using the configured %s",
                 config.name, config.pod_cidr)
        return _pod_cidr(patched)
    except APIError as e:
        log.info("setting the pod CIDR of %s failed (%s); will look again", config.name, e)
        return ""
