"""Admission: what the apiserver's registry runs on a request after authorization and
decoding and before persistence.  Mutating plugins (which may change the object) run first,
validating plugins (which only accept or refuse, and charge quota) after the strategy's own
validation; see :mod:`control.apiserver.admission.chain`.

Plugins read current objects through a :class:`ClusterView` (the watch cache) and write only
through a :class:`QuotaWriter`; they refuse with ``control.api.errors.APIError`` subclasses.
"""

from __future__ import annotations

from control.api.quantity import (
    Quantity,
    QuantityError,
    format_quantity,
    parse_quantity,
)
from control.apiserver.admission.chain import AdmissionChain, default_chain
from control.apiserver.admission.default_toleration_seconds import DefaultTolerationSeconds
from control.apiserver.admission.limit_ranger import LimitRanger
from control.apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from control.apiserver.admission.node_restriction import NodeRestriction
from control.apiserver.admission.priority import Priority
from control.apiserver.admission.request import (
    CONNECT,
    CREATE,
    DELETE,
    UPDATE,
    AdmissionRequest,
    ClusterView,
    MutatingPlugin,
    QuotaWriter,
    ValidatingPlugin,
)
from control.apiserver.admission.resource_quota import ResourceQuota
from control.apiserver.admission.service_account import ServiceAccount

__all__ = [
    "CONNECT",
    "CREATE",
    "DELETE",
    "UPDATE",
    "AdmissionChain",
    "AdmissionRequest",
    "ClusterView",
    "DefaultTolerationSeconds",
    "LimitRanger",
    "MutatingPlugin",
    "NamespaceLifecycle",
    "NodeRestriction",
    "Priority",
    "Quantity",
    "QuantityError",
    "QuotaWriter",
    "ResourceQuota",
    "ServiceAccount",
    "ValidatingPlugin",
    "default_chain",
    "format_quantity",
    "parse_quantity",
]
