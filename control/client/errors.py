"""The client's own errors, beside the API error tree it shares with the apiserver
(:mod:`control.api.errors`, rebuilt from every Status by :func:`~control.api.errors.from_status`).

* :class:`Unreachable` — no apiserver could be reached: the request was never sent, so it
  definitely did nothing (a 503 to callers that only look at the code).
* :class:`OutcomeUnknown` — the request was sent and no answer came: it may or may not have
  been applied ("unknown is a result"; a 504 to callers that only look at the code).
* :class:`Congested` — every connection of the client's pool stayed busy until the request's
  deadline: it was never sent (a 503 too).
* :class:`NotLeading` — a leader-elected component asked to write after it stopped leading
  (the fence refused before anything was sent).
"""

from __future__ import annotations

from control.api.errors import APIError, ServiceUnavailable, Timeout

__all__ = ["Congested", "NotLeading", "OutcomeUnknown", "Unreachable"]


class Unreachable(ServiceUnavailable):
    def __init__(self, message: str) -> None:
        super().__init__(f"no apiserver reachable: {message}")


class Congested(ServiceUnavailable):
    def __init__(self, message: str) -> None:
        super().__init__(f"the request was not sent: {message}")


class OutcomeUnknown(Timeout):
    def __init__(self, message: str) -> None:
        super().__init__(f"the request was sent but no answer came ({message}); "
                         "it may or may not have been applied")


class NotLeading(APIError):
    def __init__(self, what: str) -> None:
        super().__init__(503, "NotLeading", f"not the leader any more: refusing to {what}")
