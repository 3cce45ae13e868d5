"""Graceful pod deletion waits for the node agent, whatever else writes the pod meanwhile
(kube's ShouldDeleteDuringUpdate).  The long cluster chaos run found a second StatefulSet
``db-0`` running while the first still ran on a partitioned node: the node lifecycle
controller's status write (Ready=False) removed the gracefully deleted pod at once."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.errors import NotFound
from control.client import resources as R
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


def _pod(name: str, finalizers: list[str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "c", "image": "busybox"}]}}


async def test_a_status_write_does_not_finish_a_graceful_pod_deletion(api: InProcessAPI) -> None:
    async with api.client() as c:
        await c.create(R.PODS, _pod("g"), "default")
        await c.delete(R.PODS, "g", "default")
        got = await c.get(R.PODS, "g", "default")
        assert got["metadata"]["deletionGracePeriodSeconds"] == 30
        # what the node lifecycle controller writes when the node goes Unknown
        await c.patch(R.PODS, "g", {"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}}, "default",
            subresource="status")
        got = await c.get(R.PODS, "g", "default")  # still there: its agent has not confirmed
        assert got["metadata"]["deletionTimestamp"]
        await c.delete(R.PODS, "g", "default", grace_period_seconds=0)  # the agent's delete
        with pytest.raises(NotFound):
            await c.get(R.PODS, "g", "default")


async def test_the_last_finalizer_of_a_graceful_pod_deletion_leaves_it_to_the_agent(
        api: InProcessAPI) -> None:
    async with api.client() as c:
        await c.create(R.PODS, _pod("f1", ["example.com/hold"]), "default")
        await c.delete(R.PODS, "f1", "default")
        await c.patch(R.PODS, "f1", {"metadata": {"finalizers": None}}, "default")
        assert (await c.get(R.PODS, "f1", "default"))["metadata"]["deletionTimestamp"]
        await c.delete(R.PODS, "f1", "default", grace_period_seconds=0)
        with pytest.raises(NotFound):
            await c.get(R.PODS, "f1", "default")
        # the agent first, the finalizer last: the pod goes with the finalizer
        await c.create(R.PODS, _pod("f2", ["example.com/hold"]), "default")
        await c.delete(R.PODS, "f2", "default")
        await c.delete(R.PODS, "f2", "default", grace_period_seconds=0)
        assert (await c.get(R.PODS, "f2", "default"))["metadata"]["finalizers"]
        await c.patch(R.PODS, "f2", {"metadata": {"finalizers": None}}, "default")
        with pytest.raises(NotFound):
            await c.get(R.PODS, "f2", "default")


async def test_an_object_without_grace_goes_with_its_last_finalizer(api: InProcessAPI) -> None:
    async with api.client() as c:
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cm", "finalizers": ["example.com/hold"]}}
        await c.create(R.CONFIGMAPS, cm, "default")
        await c.delete(R.CONFIGMAPS, "cm", "default")
        await c.patch(R.CONFIGMAPS, "cm", {"metadata": {"finalizers": None}}, "default")
        with pytest.raises(NotFound):
            await c.get(R.CONFIGMAPS, "cm", "default")
