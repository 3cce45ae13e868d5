"""The cluster chaos observer records what the surge checker needs to date a pod: its
creation on the observer's own clock, and whether a sighting came from a relist (the
object's state now, with the changes in between never seen)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from chaos.cluster_observer import Observer
from chaos.cluster_workload import NAMESPACE
from chaos.history import History, Observation
from control.client import resources as R
from tests.inprocess import InProcessAPI


def pod(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_a_pod_is_dated_by_its_creation_and_a_listed_one_is_marked(
        api: InProcessAPI) -> None:
    async with api.client() as c:
        await c.create(R.NAMESPACES, {"metadata": {"name": NAMESPACE}})
        await c.create(R.SERVICEACCOUNTS, {"metadata": {"name": "default"}}, NAMESPACE)
        await c.create(R.PODS, pod("before"), NAMESPACE)
        history = History()
        observer = Observer(api.client(), history)
        observer.start()
        try:
            def of(name: str) -> list[Observation]:
                return [o for o in history.observations
                        if o.resource == "pods" and o.name == name]

            await until(lambda: bool(of("before")))
            made = time.monotonic()
            await c.create(R.PODS, pod("after"), NAMESPACE)
            await until(lambda: bool(of("after")))
        finally:
            await observer.stop()
    listed, watched = of("before")[0], of("after")[0]
    assert listed.data.get("relist") is True  # the initial list is a relist
    assert "relist" not in watched.data
    # creationTimestamp has whole seconds: up to 1 s early, never later than the sighting
    assert made - 1.5 <= watched.data["created"] <= watched.at
    assert listed.data["created"] <= made
