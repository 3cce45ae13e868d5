"""Container logs on the agent: ``GET /containerLogs/{namespace}/{pod}/{container}``, a
``text/plain`` stream, written line by line as the handler yields them (so ``follow`` shows
each line as it comes).

The handler selects the lines (previous instance, tail, since, follow); this module turns
``sinceSeconds`` into a time on the agent's clock, prefixes ``timestamps`` the way kubelet does
(RFC 3339 with nine fractional digits, then a space) and cuts the stream at ``limitBytes``
(timestamps count).  An error the handler raises before the first line is a Status answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt

from aiohttp import web

from control.api.clock import Clock
from control.api.streamproto.options import LogOptions, OptionError

from .handler import PodRef, StreamHandler, StreamingError
from .replies import status_response

__all__ = ["format_timestamp", "serve_logs"]


def format_timestamp(time_ns: int) -> str:
    """``2026-07-30T10:00:03.123456789Z``: kubelet's fixed-width RFC 3339 nanoseconds."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    whole = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{nanos:09d}Z"


async def serve_logs(request: web.Request, handler: StreamHandler, pod: PodRef,
                     container: str, clock: Clock) -> web.StreamResponse:
    query = {k: request.query.getall(k) for k in request.query}
    try:
        opts = LogOptions.from_query(query)
    except OptionError as e:
        return status_response(400, "BadRequest", str(e))
    if opts.since_seconds is not None:
        opts = dataclasses.replace(
            opts, since_seconds=None,
            since_time=clock.now() - dt.timedelta(seconds=opts.since_seconds))
    try:
        records = await handler.logs(pod, container, opts)
    except StreamingError as e:
        return status_response(e.code, e.reason, e.message)
    resp = web.StreamResponse()
    resp.content_type = "text/plain"
    await resp.prepare(request)
    left = opts.limit_bytes
    try:
        async for record in records:
            data = record.data
            if opts.timestamps:
                data = format_timestamp(record.time_ns).encode() + b" " + data
            if left is not None:
                data, left = data[:left], left - min(left, len(data))
            await resp.write(data)
            if left == 0:
                break
    finally:
        close = getattr(records, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
    await resp.write_eof()
    return resp
