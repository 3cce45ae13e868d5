"""Garbage-collector settings for the long-running component processes.

Components hold large heaps of long-lived objects (an apiserver's watch cache, a hollow-node
process's 15,000 pods, informer caches) and replace many of them on every update.  With
CPython's defaults (700, 10, 10) every promotion into the old generation counts toward a full
collection, which then walks the whole heap: a process of 500 hollow nodes spent 48 % of its
CPU in ``gc_collect_main`` (py-spy ``--native``) until its Lease renewals timed out, and still
26 % with the store's thresholds, as pod updates kept promoting objects and so triggering full
collections of a 1.5 GiB heap.  Objects mostly die by reference counting here and cycles die
young (exceptions, tracebacks), so young collections stay and automatic full collections are
left out (the third threshold is out of reach).  The store replicas do the same in ``store/__main__.py`` (the store may not import
``control``).
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc() -> None:
    """Collect young objects less often and keep what start-up allocated out of every
    collection (call once, after imports and start-up)."""
    gc.set_threshold(50_000, 50, 1_000_000)
    gc.freeze()
