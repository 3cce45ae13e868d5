"""The kubernetes Service's endpoints: each apiserver's lease and address, stale ones dropped
by the reconcilers' own clocks, a leaving apiserver removing itself."""

from __future__ import annotations

from control.apiserver.endpoints_reconciler import EndpointReconciler
from control.client import resources as R
from tests.conftest import eventually
from tests.inprocess import InProcessAPI


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_live_apiservers_are_the_kubernetes_endpoints(api: InProcessAPI) -> None:
    clock = _Clock()
    a = EndpointReconciler(api.state, "127.0.0.1:6443", monotonic=clock)
    b = EndpointReconciler(api.state, "127.0.0.1:6444", monotonic=clock)
    for r in (a, b):
        await r.renew()
    assert await api.state.cache.sync()
    await a.reconcile()
    async with api.client() as admin:
        ep = await admin.get(R.ENDPOINTS, "kubernetes", "default")
        assert ep["subsets"] == [
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443,
                                                            "protocol": "TCP"}]},
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6444,
                                                            "protocol": "TCP"}]}]
        slices = {s["metadata"]["name"]: s for s in (await admin.list(
            R.ENDPOINTSLICES, "default", label_selector="kubernetes.io/service-name=kubernetes"
        ))["items"]}
        assert set(slices) == {"kubernetes", "kubernetes-6444"}
        assert slices["kubernetes"]["ports"] == [{"name": "https", "port": 6443,
                                                  "protocol": "TCP"}]
        assert slices["kubernetes"]["endpoints"][0]["addresses"] == ["127.0.0.1"]
        # b stops renewing: a drops it once a lease duration passed on a's clock
        clock.t += 20
        await a.renew()
        assert await api.state.cache.sync()
        await a.reconcile()
        ep = await admin.get(R.ENDPOINTS, "kubernetes", "default")
        assert [s["ports"][0]["port"] for s in ep["subsets"]] == [6443]

        async def one_slice() -> bool:
            items = (await admin.list(R.ENDPOINTSLICES, "default"))["items"]
            return [s["metadata"]["name"] for s in items
                    if s["metadata"]["name"].startswith("kubernetes")] == ["kubernetes"]
        await eventually(one_slice, timeout=10)
        await a.stop()
        ep = await admin.get(R.ENDPOINTS, "kubernetes", "default")
        assert ep.get("subsets") in (None, [])
