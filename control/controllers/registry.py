"""Every controller the manager can run, by its Kubernetes name (``--controllers`` takes these),
as ``module:Class`` so that only the enabled ones are imported.  Adding a controller is one
line here plus its module."""

from __future__ import annotations

import importlib

from .base import Controller

__all__ = ["CONTROLLERS", "load"]

CONTROLLERS: dict[str, str] = {
    "replicaset": "control.controllers.replicaset:ReplicaSetController",
    "deployment": "control.controllers.deployment:DeploymentController",
    "daemonset": "control.controllers.daemonset:DaemonSetController",
    "statefulset": "control.controllers.statefulset:StatefulSetController",
    "job": "control.controllers.job:JobController",
    "cronjob": "control.controllers.cronjob:CronJobController",
    "ttl-after-finished": "control.controllers.ttlafterfinished:TTLAfterFinishedController",
    "endpoint": "control.controllers.endpoints:EndpointsController",
    "endpointslice": "control.controllers.endpointslice:EndpointSliceController",
    "garbagecollector": "control.controllers.garbagecollector:GarbageCollector",
    "nodeipam": "control.controllers.nodeipam:NodeIpamController",
    "namespace": "control.controllers.namespace:NamespaceController",
    "serviceaccount": "control.controllers.serviceaccount:ServiceAccountsController",
    "root-ca-cert-publisher": "control.controllers.rootcacert:RootCACertPublisher",
    "disruption": "control.controllers.disruption:DisruptionController",
    "resourcequota": "control.controllers.resourcequota:ResourceQuotaController",
    "podgc": "control.controllers.podgc:PodGCController",
    "nodelifecycle": "control.controllers.nodelifecycle:NodeLifecycleController",
    "taint-eviction": "control.controllers.tainteviction:TaintEvictionController",
    "ttl": "control.controllers.ttl:TTLController",
}


def load(name: str) -> type[Controller]:
    """The controller class registered as ``name`` (KeyError naming the known ones)."""
    try:
        target = CONTROLLERS[name]
    except KeyError:
        raise KeyError(f"unknown controller {name!r}; known: {', '.join(sorted(CONTROLLERS))}")
    module, _, cls = target.partition(":")
    found: type[Controller] = getattr(importlib.import_module(module), cls)
    return found
