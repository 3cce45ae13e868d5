"""Shared fixtures: real three-replica store clusters on loopback, torn down by pid."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from store.launch import LocalCluster

T = TypeVar("T")


def _quiet(_: str) -> None:
    pass


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A fresh three-replica cluster (fsync on, real mTLS) for one test."""
    c = LocalCluster(tmp_path / "cluster", replicas=3)
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns a truthy value without raising; its last error or a
    TimeoutError when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await probe()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the condition is "eventually succeeds"; keep the last cause
            last = e
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout}s (last error: {last!r})")


def wait_for_leader(c: LocalCluster, *, other_than: str | None = None, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = c.leader()
        if leader is not None and leader != other_than:
            return leader
        time.sleep(0.05)
    raise TimeoutError(f"no leader (other than {other_than}) within {timeout}s")


def statuses(c: LocalCluster) -> dict[str, Any]:
    return {k: v for k, v in c.status().items() if v is not None}


@pytest.fixture(scope="session")
def certs_dir_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cluster PKI for every in-process test of the session."""
    from tests.inprocess import make_certs

    return make_certs(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def api(certs_dir_session: Path):  # type: ignore[no-untyped-def]
    """A real apiserver over an in-memory store, in this test's event loop (the fast tier)."""
    from tests.inprocess import serve_api

    async with serve_api(certs_dir_session) as served:
        yield served
