"""Integration: the README's quick start, as written, in a fresh clone.

The clone's ``scripts/up`` would build a new virtual environment (minutes, and the network);
the test stands in for it with this interpreter running the clone's own code (``PYTHONPATH``
is the clone, so ``ketch``'s default ``--dir`` is the clone's ``.ketch`` as for a user) and
this environment's kubectl.  Then every line of the README's block runs in one shell, in
order; the only commands that may fail are the ones the README says fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kube import kubectl_path

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent



def _quick_start(readme: str) -> tuple[str, str]:
    """The two-commands block and the block after "scripts/up returns once"."""
    head = readme.index("## Two commands")
    blocks = re.findall(r"```sh\n(.*?)```", readme[head:], re.DOTALL)
    return blocks[0], blocks[1]


@pytest.mark.timeout(600)
def test_the_readme_quick_start_works_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "ketch"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    up, block = _quick_start((clone / "README.md").read_text())
    assert "scripts/up" in up
    for link in re.findall(r"\]\(([^)#]+)\)", (clone / "README.md").read_text()):
        if not link.startswith("http"):
            assert (clone / link).exists(), f"README links to {link}, missing in a clone"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ketch").write_text(f"#!/bin/sh\nexec {sys.executable} -m ketch \"$@\"\n")
    (bindir / "ketch").chmod(0o755)
    (bindir / "kubectl").symlink_to(kubectl_path())
    script = block.replace(".venv/bin/", f"{bindir}/")
    # mark every failing command; the README's expected failures are allowed
    prologue = "set -o errtrace\ntrap 'echo \"FAILED: $BASH_COMMAND\" >&2' ERR\n"
    env = {**os.environ, "PYTHONPATH": str(clone), "HOME": str(tmp_path),
           "KUBECONFIG": ""}
    try:
        started = subprocess.run([str(bindir / "ketch"), "up"], check=False, cwd=clone, env=env,
                                 capture_output=True, text=True, timeout=240)
        assert started.returncode == 0, started.stdout + started.stderr
        assert ".kubeconfig" in started.stdout
        p = subprocess.run(["bash", "-c", prologue + script], check=False, cwd=clone, env=env,
                           capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run([str(bindir / "ketch"), "down"], check=False, cwd=clone, env=env,
                       capture_output=True, timeout=120)
    failed = [line for line in p.stderr.splitlines() if line.startswith("FAILED: ")]
    unexpected = [f for f in failed if not any(e in f for e in ("jane.kubeconfig get pods",
                                                                "auth can-i"))]
    assert not unexpected, p.stdout + p.stderr
    assert ('pods is forbidden: User "jane" cannot list resource "pods"' in p.stderr)
    assert sum("jane.kubeconfig get pods" in f for f in failed) == 1, p.stderr
    assert "deployment.apps/api created" in p.stdout
    assert "\nno\n" in f"\n{p.stdout}"
    assert "apiserver-1" in p.stdout and "leader" in p.stdout  # ketch status
