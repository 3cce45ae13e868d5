"""The query options of the streaming requests and the node agent's URL paths, as both the
apiserver (which validates kubectl's query and forwards it) and the agent (which serves it)
read them.

Query values follow Kubernetes' parameter codec: a boolean is true unless it is ``0`` or
``false`` (the apiserver forwards ``1``); integers are decimal.  Parsing raises
:class:`OptionError` naming the field, so the apiserver can answer 422 ``PodLogOptions … is
invalid`` and the agent 400.

Agent paths (kubelet's, with the pod UID so a recreated pod of the same name is never reached
by mistake)::

    GET /exec/{namespace}/{pod}/{uid}/{container}?command=…&stdin=1&stdout=1&stderr=1&tty=1
    GET /attach/{namespace}/{pod}/{uid}/{container}?stdin=1&stdout=1&…
    GET /portForward/{namespace}/{pod}/{uid}
    GET /containerLogs/{namespace}/{pod}/{container}?podUID=…&follow=1&tailLines=…
    GET /stats/summary          (:mod:`.summary`)
    GET /healthz
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from control.api.clock import parse_time

__all__ = [
    "HEALTHZ_PATH",
    "SUMMARY_PATH",
    "LogOptions",
    "OptionError",
    "RemoteCommandOptions",
    "attach_path",
    "exec_path",
    "logs_path",
    "port_forward_path",
]

SUMMARY_PATH = "/stats/summary"
HEALTHZ_PATH = "/healthz"

Query = Mapping[str, Sequence[str]]


class OptionError(ValueError):
    """A query value that does not validate: ``field``, the value as given, and why."""

    def __init__(self, field: str, value: str, why: str) -> None:
        super().__init__(f"{field}: Invalid value: {value}: {why}")
        self.field, self.value, self.why = field, value, why


def _first(query: Query, key: str) -> str | None:
    values = query.get(key) or ()
    if isinstance(values, str):
        return values
    return values[0] if values else None


def _bool(query: Query, key: str) -> bool:
    value = _first(query, key)
    return value is not None and value not in ("0", "false", "False")


def _int(query: Query, key: str) -> int | None:
    value = _first(query, key)
    if value is None or value == "":
        return None
    try:
        return int(value, 10)
    except ValueError:
        raise OptionError(key, f'"{value}"', "must be an integer") from None


def _seg(s: str) -> str:
    return quote(s, safe="")


# --- exec and attach ---------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteCommandOptions:
    """``PodExecOptions`` / ``PodAttachOptions`` (the container is in the path).  With a TTY
    stderr is merged into stdout, so ``stderr`` is dropped (kubelet does the same)."""

    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False

    @classmethod
    def from_query(cls, query: Query, *, exec_: bool) -> RemoteCommandOptions:
        """Parse; OptionError when no stream is asked for or exec has no command."""
        values = query.get("command") or ()
        command = (values,) if isinstance(values, str) else tuple(values)
        opts = cls(command if exec_ else (), _bool(query, "stdin"), _bool(query, "stdout"),
                   _bool(query, "stderr"), _bool(query, "tty"))
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise OptionError("stdin", "false",
                              "you must specify at least 1 of stdin, stdout, stderr")
        if exec_ and not opts.command:
            raise OptionError("command", "[]", "you must specify at least one command for "
                              "the container")
        if opts.tty and opts.stderr:
            opts = cls(opts.command, opts.stdin, opts.stdout, False, True)
        return opts

    def to_query(self) -> list[tuple[str, str]]:
        out = [("command", c) for c in self.command]
        out += [(k, "1") for k, v in (("stdin", self.stdin), ("stdout", self.stdout),
                                       ("stderr", self.stderr), ("tty", self.tty)) if v]
        return out


def exec_path(namespace: str, pod: str, uid: str, container: str) -> str:
    return f"/exec/{_seg(namespace)}/{_seg(pod)}/{_seg(uid)}/{_seg(container)}"


def attach_path(namespace: str, pod: str, uid: str, container: str) -> str:
    return f"/attach/{_seg(namespace)}/{_seg(pod)}/{_seg(uid)}/{_seg(container)}"


def port_forward_path(namespace: str, pod: str, uid: str) -> str:
    return f"/portForward/{_seg(namespace)}/{_seg(pod)}/{_seg(uid)}"


def logs_path(namespace: str, pod: str, container: str) -> str:
    return f"/containerLogs/{_seg(namespace)}/{_seg(pod)}/{_seg(container)}"


# --- logs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogOptions:
    """``PodLogOptions`` minus the container.  At most one of ``since_seconds`` and
    ``since_time``; the agent turns ``since_seconds`` into a time on its own clock."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: dt.datetime | None = None

    @classmethod
    def from_query(cls, query: Query) -> LogOptions:
        """Parse and validate as kube's ``ValidatePodLogOptions``; OptionError on the first
        problem."""
        since_text = _first(query, "sinceTime")
        since_time = None
        if since_text:
            since_time = parse_time(since_text)
            if since_time is None:
                raise OptionError("sinceTime", f'"{since_text}"', "must be an RFC 3339 time")
        opts = cls(follow=_bool(query, "follow"), previous=_bool(query, "previous"),
                   timestamps=_bool(query, "timestamps"), tail_lines=_int(query, "tailLines"),
                   limit_bytes=_int(query, "limitBytes"),
                   since_seconds=_int(query, "sinceSeconds"), since_time=since_time)
        if opts.tail_lines is not None and opts.tail_lines < 0:
            raise OptionError("tailLines", str(opts.tail_lines),
                              "must be greater than or equal to 0")
        if opts.limit_bytes is not None and opts.limit_bytes < 1:
            raise OptionError("limitBytes", str(opts.limit_bytes), "must be greater than 0")
        if opts.since_seconds is not None and opts.since_time is not None:
            raise OptionError("", "", "at most one of `sinceTime` or `sinceSeconds` may be "
                              "specified")
        if opts.since_seconds is not None and opts.since_seconds < 1:
            raise OptionError("sinceSeconds", str(opts.since_seconds), "must be greater than 0")
        return opts

    def to_query(self) -> list[tuple[str, str]]:
        out = [(k, "1") for k, v in (("follow", self.follow), ("previous", self.previous),
                                      ("timestamps", self.timestamps)) if v]
        for key, n in (("tailLines", self.tail_lines), ("limitBytes", self.limit_bytes),
                       ("sinceSeconds", self.since_seconds)):
            if n is not None:
                out.append((key, str(n)))
        if self.since_time is not None:
            out.append(("sinceTime", self.since_time.astimezone(dt.UTC)
                        .strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
        return out
