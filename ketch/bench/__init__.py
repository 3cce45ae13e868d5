"""Benchmarks: `ketch bench store` measures ketch's replicated store against etcd.

`load` generates closed-loop load and measures it; `targets` wraps the systems under test
(`etcd` runs the reference etcd cluster); `scenarios` runs the throughput matrix and the
failover series; `machine` meters CPU; `report` formats figures; `cli` wires the command.
"""

from __future__ import annotations

__all__ = ["cli", "etcd", "load", "machine", "report", "scenarios", "targets"]
