"""The controller-manager (kube-controller-manager's job): one module per controller, each a
reconcile function over current state (informer → work queue → ``reconcile(key)``), run by
:class:`~.manager.ControllerManager` while this process holds the leader Lease."""

from __future__ import annotations

from .base import Controller, ControllerContext, Settings

__all__ = ["Controller", "ControllerContext", "Settings"]
