"""control.client.process.run_until_signalled: a CLI stopped by ``kill`` or Ctrl-C unwinds, so
the processes it started are stopped (``ketch chaos run`` once left a whole cluster behind on
SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from control.client.process import Terminated, run_until_signalled


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_the_run_its_cleanup_stops_its_children_and_repeats_are_ignored(
        sig: signal.Signals) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    cleaned: list[str] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, os.kill, os.getpid(), sig)
        try:
            await asyncio.sleep(30)
            return 0
        finally:
            os.kill(os.getpid(), sig)  # a second signal while unwinding: ignored
            await asyncio.sleep(0.05)
            child.kill()
            child.wait(10)
            cleaned.append("child stopped")

    try:
        with pytest.raises(Terminated) as e:
            run_until_signalled(main())
    finally:
        if child.poll() is None:
            child.kill()
    assert e.value.signum == sig
    assert cleaned == ["child stopped"]
    assert child.returncode == -signal.SIGKILL
    # the handlers are gone with the loop: the process's own are back
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_run_that_ends_returns_its_value() -> None:
    async def main() -> int:
        await asyncio.sleep(0)
        return 7

    assert run_until_signalled(main()) == 7
