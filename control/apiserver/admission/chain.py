"""The admission chain: every mutating plugin in order, then (after the strategy has validated
the object) every validating plugin in order; the first error stops the request.

:func:`default_chain` is kube-apiserver's recommended order for the plugins ketch has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from control.api.errors import BadRequest
from control.api.quantity import QuantityError
from control.apiserver.admission.default_toleration_seconds import DefaultTolerationSeconds
from control.apiserver.admission.limit_ranger import LimitRanger
from control.apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from control.apiserver.admission.node_restriction import NodeRestriction
from control.apiserver.admission.priority import Priority
from control.apiserver.admission.request import (
    AdmissionRequest,
    ClusterView,
    MutatingPlugin,
    QuotaWriter,
    ValidatingPlugin,
)
from control.apiserver.admission.resource_quota import ResourceQuota
from control.apiserver.admission.service_account import ServiceAccount

__all__ = ["AdmissionChain", "default_chain"]


class AdmissionChain:
    """Runs plugins in the given order.  Plugins raise ``APIError``s; a malformed resource
    quantity met by any plugin becomes a 400, the answer kube-apiserver gives when decoding."""

    def __init__(self, mutating: Sequence[MutatingPlugin],
                 validating: Sequence[ValidatingPlugin]) -> None:
        self.mutating = tuple(mutating)
        self.validating = tuple(validating)

    async def admit(self, req: AdmissionRequest, view: ClusterView) -> None:
        """May change ``req.obj`` in place."""
        for plugin in self.mutating:
            try:
                await plugin.admit(req, view)
            except QuantityError as exc:
                raise BadRequest(str(exc)) from exc

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        """Never changes ``req.obj``; may charge quota (unless ``req.dry_run``)."""
        for plugin in self.validating:
            try:
                await plugin.validate(req, view)
            except QuantityError as exc:
                raise BadRequest(str(exc)) from exc


def default_chain(*, quota_writer: QuotaWriter, random_suffix: Callable[[], str],
                  toleration_seconds: tuple[int, int] = (300, 300)) -> AdmissionChain:
    """NamespaceLifecycle, LimitRanger, ServiceAccount, NodeRestriction, Priority,
    DefaultTolerationSeconds, then ResourceQuota last (so it counts the defaults the mutating
    plugins filled in).  Plugins that do both share one instance across the two phases.
    ``toleration_seconds``: DefaultTolerationSeconds' (not-ready, unreachable) values."""
    lifecycle = NamespaceLifecycle()
    limits = LimitRanger()
    accounts = ServiceAccount(random_suffix=random_suffix)
    priority = Priority()
    return AdmissionChain(
        mutating=[lifecycle, limits, accounts, priority, DefaultTolerationSeconds(
            seconds=toleration_seconds[0], unreachable_seconds=toleration_seconds[1])],
        validating=[lifecycle, limits, accounts, NodeRestriction(), priority,
                    ResourceQuota(quota_writer=quota_writer)],
    )
