"""Deliberately broken component behaviours, to prove that the chaos cluster's checkers catch
real bugs (the store's own are in ``store/sabotage.py``).

A component runs one only when started with ``--sabotage KIND`` *and* its environment has
``KETCH_ALLOW_SABOTAGE=1`` (the chaos suite's sabotage tests set both); otherwise the flag is
a start-up error.  Each switch is one marked line in the code path it breaks:

* ``skip-expectations`` (controller-manager) — controllers act as if every expectation were
  met, so a ReplicaSet whose cache lags its own creations creates pods again
  (``control/controllers/expectations.py``);
* ``keep-leading`` (controller-manager, scheduler) — a leader that cannot renew its Lease
  goes on acting: its write fence stays open and its work is not cancelled
  (``control/client/leaderelection.py``);
* ``keep-replaced-pods`` (node agent) — a deleted pod is reported terminated without its
  containers being stopped, and they are left running (``node/pods/worker.py``).
"""

from __future__ import annotations

import logging
import os

__all__ = ["ALLOW_ENV", "KINDS", "permit"]

log = logging.getLogger("ketch.sabotage")

ALLOW_ENV = "KETCH_ALLOW_SABOTAGE"
KINDS = {"controller-manager": ("skip-expectations", "keep-leading"),
         "scheduler": ("keep-leading",),
         "node": ("keep-replaced-pods",)}


def permit(component: str, kind: str | None) -> str | None:
    """``kind`` when ``component`` may run it, None when no sabotage was asked for; raises
    ValueError (the message says why) for an unknown kind or a missing permission."""
    if not kind:
        return None
    known = KINDS.get(component, ())
    if kind not in known:
        raise ValueError(f"unknown sabotage {kind!r} for the {component} "
                         f"(known: {', '.join(known) or 'none'})")
    if os.environ.get(ALLOW_ENV) != "1":
        raise ValueError(f"--sabotage {kind} makes the {component} deliberately wrong and is "
                         f"refused unless {ALLOW_ENV}=1 is set (chaos tests only)")
    log.warning("SABOTAGE %s is on: this %s is deliberately broken", kind, component)
    return kind
