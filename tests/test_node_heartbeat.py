"""The Lease heartbeat's retry rhythm while the apiservers are down (pure logic: a client that
fails, a clock that records the waits)."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.clock import FakeClock
from control.api.errors import ServiceUnavailable
from node.heartbeat import LeaseHeartbeat


class _Down:
    """Every call fails as an apiserver that is restarting does."""

    async def get(self, *a: Any, **kw: Any) -> Any:
        raise ServiceUnavailable("apiserver is restarting")

    create = update = get


class _Waits(FakeClock):
    """Records each wait; stops the loop after ``n`` of them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.n = n

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) >= self.n:
            raise _Enough


class _Enough(Exception):
    pass


async def _waits(renew_seconds: float, n: int = 10) -> list[float]:
    clock = _Waits(n)
    down: Any = _Down()
    hb = LeaseHeartbeat(down, "node-1", clock=clock, duration=int(renew_seconds * 4),
                        renew_seconds=renew_seconds)
    with pytest.raises(_Enough):
        await hb.run()
    assert hb.failures == n
    return clock.waits


async def test_retries_never_wait_longer_than_a_renewal() -> None:
    # a 10-s Lease renewed every 2.5 s: the kubelet's 7-s cap would leave 15 s between two
    # attempts after a 6-s outage — the node lifecycle controller's whole grace period
    waits = await _waits(2.5)
    assert waits[:4] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert max(waits) == pytest.approx(2.5)
    assert waits[-3:] == pytest.approx([2.5, 2.5, 2.5])


async def test_the_kubelets_rhythm_is_unchanged_for_its_own_lease() -> None:
    # a 40-s Lease renewed every 10 s: 200 ms doubling to the kubelet's 7 s
    waits = await _waits(10.0)
    assert waits[:6] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4])
    assert waits[-3:] == pytest.approx([7.0, 7.0, 7.0])


@pytest.mark.parametrize("lease_duration", [40, 8])
async def test_heartbeat_attempts_outlast_the_apiservers_queue_wait(
        tmp_path: Any, lease_duration: int) -> None:
    # An overloaded apiserver answers 429 after FlowControl.MAX_WAIT in its queue, on the live
    # connection; an attempt that gives up first closes it, and every retry pays a TLS
    # handshake on both sides (the spiral of the 1,000-node benchmark, with 5-s attempts).
    # A Lease renewed more often than that (chaos runs' short ones) keeps one try per renewal.
    import ssl

    from control.apiserver.flowcontrol import FlowControl
    from control.client import ClientConfig
    from node.clients import agent_clients
    from node.config import AgentConfig

    config = AgentConfig(name="n1", dir=str(tmp_path), lease_duration=lease_duration)
    cc = ClientConfig(servers=("https://127.0.0.1:1",), ssl=ssl.create_default_context())
    async with agent_clients(cc, "test", config, qps=0, burst=0) as (client, heartbeat):
        assert client.attempt_timeout >= 2 * FlowControl.MAX_WAIT
        if lease_duration == AgentConfig.lease_duration:
            assert heartbeat.attempt_timeout >= 2 * FlowControl.MAX_WAIT
        else:
            assert heartbeat.attempt_timeout == config.lease_renew_seconds == 2
