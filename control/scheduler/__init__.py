"""ketch's scheduler: places pending pods on nodes through ``pods/binding``.

The pure core — cache (:mod:`.cache`), filters and scores (:mod:`.plugins`), equivalence
classes (:mod:`.equivalence`), the decision (:mod:`.algorithm`), queue (:mod:`.queue`),
preemption (:mod:`.preemption`), messages (:mod:`.messages`) — works on the API objects as
dicts and does no I/O; :mod:`.scheduler` is the shell around it (informers, binder, status
and events) and :mod:`.process` the leader-elected process.
"""

from __future__ import annotations

from .algorithm import Algorithm, Decision
from .cache import SchedulerCache
from .messages import FitError
from .queue import SchedulingQueue

__all__ = ["Algorithm", "Decision", "FitError", "SchedulerCache", "SchedulingQueue"]
