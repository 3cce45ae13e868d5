"""The only way a component (controllers, scheduler, node agents, tools) talks to the
apiserver: a REST client with typed errors and safe retries (:mod:`.rest`), informers with
indexed caches (:mod:`.informer`, :mod:`.cache`), a work queue (:mod:`.workqueue`), leader
election on a Lease (:mod:`.leaderelection`) and an event recorder (:mod:`.events`)."""

from __future__ import annotations

from .cache import DEFAULT_INDEXERS, ObjectCache
from .config import ClientConfig
from .errors import Congested, NotLeading, OutcomeUnknown, Unreachable
from .events import NORMAL, WARNING, ComponentRecorder, EventRecorder, Recorder
from .informer import Handler, Informer, InformerFactory
from .leaderelection import LeaderElector, LeaseConfig
from .resources import Resource, object_key, resource, split_key
from .rest import APPLY, JSON_PATCH, MERGE, STRATEGIC, ApiClient, WatchEvent
from .workqueue import ShutDown, WorkQueue

__all__ = [
    "APPLY",
    "DEFAULT_INDEXERS",
    "JSON_PATCH",
    "MERGE",
    "NORMAL",
    "STRATEGIC",
    "WARNING",
    "ApiClient",
    "ClientConfig",
    "ComponentRecorder",
    "Congested",
    "EventRecorder",
    "Handler",
    "Informer",
    "InformerFactory",
    "LeaderElector",
    "LeaseConfig",
    "NotLeading",
    "ObjectCache",
    "OutcomeUnknown",
    "Recorder",
    "Resource",
    "ShutDown",
    "Unreachable",
    "WatchEvent",
    "WorkQueue",
    "object_key",
    "resource",
    "split_key",
]
