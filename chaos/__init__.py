"""ketch's chaos suite: a real cluster, clients that record histories, faults, and checkers.

Nothing here is imported by product code.  `chaos.history` is what the workload records;
`chaos.checkers` judges it afterwards.  Importing this package starts nothing.
"""

from __future__ import annotations

__all__: list[str] = []
