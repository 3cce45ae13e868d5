"""Garbage-collector settings for the long-running component processes.

Components hold large heaps of long-lived objects (an apiserver's watch cache, a hollow-node
process's 15,000 pods, informer caches) and replace many of them on every update.  With
CPython's defaults (700, 10, 10) every promotion into the old generation counts toward a full
collection, which then walks the whole heap: a process of 500 hollow nodes spent 48 % of its
CPU in ``gc_collect_main`` (py-spy ``--native``) until its Lease renewals timed out (26 % with
these thresholds).  Turning automatic full collections off instead let hollow processes grow
to 8 GiB in the 1,000-node run (uncollected cycles), so they stay on.  The store replicas do
the same in ``store/__main__.py`` (the store may not import ``control``).
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc() -> None:
    """Collect young objects less often and keep what start-up allocated out of every
    collection (call once, after imports and start-up)."""
    gc.set_threshold(50_000, 50, 100)
    gc.freeze()
