"""The node agent's streaming server (kubelet's): exec, attach, port-forward, container logs and
resource stats, over HTTPS that only the apiserver's kubelet client may call.

The agent provides a :class:`StreamHandler` (its runtime) and starts a
:class:`StreamingServer`; the apiserver proxies ``pods/{exec,attach,portforward,log}``,
``nodes/proxy`` and ``metrics.k8s.io`` to it.
"""

from __future__ import annotations

from .handler import (
    ByteSource,
    ContainerNotFound,
    ContainerNotRunning,
    LogOptions,
    LogRecord,
    LogsUnavailable,
    Output,
    PodNotFound,
    PodRef,
    Sample,
    StreamHandler,
    StreamingError,
    Streams,
    TerminalSize,
)
from .server import StreamingConfig, StreamingServer, build_app, serving_context

__all__ = [
    "ByteSource",
    "ContainerNotFound",
    "ContainerNotRunning",
    "LogOptions",
    "LogRecord",
    "LogsUnavailable",
    "Output",
    "PodNotFound",
    "PodRef",
    "Sample",
    "StreamHandler",
    "StreamingConfig",
    "StreamingError",
    "StreamingServer",
    "Streams",
    "TerminalSize",
    "build_app",
    "serving_context",
]
