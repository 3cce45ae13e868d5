"""The container shim (conmon's and containerd-shim's job): one small process per container
that starts it, outlives the agent, and keeps its logs, its stdin and its exit code.

The agent starts ``shim <container dir>`` (an isolated interpreter, standard library only) in
its own session.  The shim:

1. takes an exclusive ``flock`` on ``<dir>/lock`` for its whole life — the test of "is this
   container's shim alive" that no pid reuse can fool — and becomes a child subreaper, so every
   process the container orphans is re-parented to it and reaped;
2. forks the container process: a new session (so its process group is its pid), the cgroup
   joined, ``RLIMIT_*`` set, the working directory entered, then ``execve``.  A failure before
   ``execve`` (no such command, no such directory) comes back through a close-on-exec pipe and
   ends as exit code 128 with reason ``StartError``;
3. writes ``<dir>/state.json`` (its own and the container's pid and start ticks) and opens the
   attach socket, then tells the agent on its stdout, one JSON line, and stops writing there;
4. copies the container's stdout/stderr (or its pty) into the CRI log (``node.runtime.crilog``)
   and to attached clients, and feeds its stdin from them (the attach socket, below);
5. when the container's process exits: kills what is left of the container (its group, then
   every remaining descendant), drains the output, writes ``<dir>/exit.json`` and exits.

Attach socket ``<dir>/attach.sock``: frames of ``[channel:1][length:4, big endian][payload]``.
Client to shim: 0 stdin, 4 resize (``{"Width":..,"Height":..}``), 254 hello
(``{"stdin": bool}``), 255 stdin closed.  Shim to client: 1 stdout, 2 stderr.  The shim closes
the connection when the container exits.  With ``stdinOnce`` the container's stdin is closed
when the first client that attached with stdin goes away.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import termios
import time
from typing import Any

from . import procfs, runrecord
from .crilog import LogWriter
from .procfs import set_child_subreaper

__all__ = ["frame", "main", "read_frames"]

_MAX_CLIENT_BUFFER = 1 << 20


def frame(channel: int, payload: bytes) -> bytes:
    return struct.pack(">BI", channel, len(payload)) + payload


def read_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete frames off the front of ``buf``."""
    out = []
    while len(buf) >= 5:
        channel, length = struct.unpack(">BI", buf[:5])
        if len(buf) < 5 + length:
            break
        out.append((channel, bytes(buf[5:5 + length])))
        del buf[:5 + length]
    return out


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _now() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}Z"


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--exec":
        _exec_helper(argv[1:])
    directory = argv[0]
    with open(os.path.join(directory, "spec.json")) as f:
        spec = json.load(f)
    lock = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _report({"ok": False, "message": "container is already running"})
        sys.exit(1)
    set_child_subreaper()
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    Shim(directory, spec).run()


def _report(message: dict[str, Any]) -> None:
    """The one line the agent waits for; then stdout goes nowhere (the agent may be gone)."""
    with contextlib.suppress(OSError):
        os.write(1, json.dumps(message).encode() + b"\n")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


class Shim:
    def __init__(self, directory: str, spec: dict[str, Any]) -> None:
        self.dir = directory
        self.spec = spec
        self.tty = bool(spec.get("tty"))
        self.log = LogWriter(spec["log_path"], max_size=int(spec.get("log_max_size") or 10 << 20),
                             max_files=int(spec.get("log_max_files") or 5))
        self.outputs: dict[int, str] = {}  # fd -> stream
        self.stdin_fd: int | None = None
        self.master: int | None = None
        self.clients: dict[socket.socket, dict[str, Any]] = {}
        self.stdin_client_seen = False
        self.pid = 0
        self.exit_code: int | None = None

    # --- starting ---------------------------------------------------------------------------

    def run(self) -> None:
        child_fds = self._make_stdio()
        err_r, err_w = os.pipe()  # both close-on-exec: EOF on err_r means execve succeeded
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self._signal_group(signal.SIGTERM))
        forked_at = time.monotonic()  # the run record's start: the program cannot run earlier
        self.pid = os.fork()
        if self.pid == 0:
            self._child(child_fds, err_w)
        for fd in set(child_fds):
            os.close(fd)
        os.close(err_w)
        failure = b""
        while chunk := os.read(err_r, 4096):
            failure += chunk
        os.close(err_r)
        started = _now()
        if failure:
            os.waitpid(self.pid, 0)
            self._finish(128, "StartError", failure.decode(errors="replace"), started)
            _report({"ok": False, "message": failure.decode(errors="replace")})
            return
        _write_json(os.path.join(self.dir, "state.json"), {
            "shim_pid": os.getpid(), "shim_start": procfs.start_ticks(os.getpid()),
            "pid": self.pid, "pid_start": procfs.start_ticks(self.pid), "started_at": started})
        self._record("start", forked_at)
        listener = self._listen()  # before the report: an attach may follow it at once
        _report({"ok": True, "pid": self.pid})
        try:
            self._loop(wake_r, listener)
        finally:
            if listener is not None:
                listener.close()
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.dir, "attach.sock"))
        code = self.exit_code if self.exit_code is not None else 137
        self._record("exit", time.monotonic(), code=code)  # before exit.json tells the agent
        self._finish(code, "Completed" if self.exit_code == 0 else "Error", "", started)

    def _record(self, event: str, mono: float, **fields: Any) -> None:
        """A line in the node's run record, when the agent keeps one (``runrecord``)."""
        record = self.spec.get("run_record") or {}
        if record.get("path"):
            runrecord.append(record["path"], event, mono, dict(record.get("tags") or {}),
                             pid=self.pid, **fields)

    def _make_stdio(self) -> list[int]:
        """The container's fds 0, 1, 2 (the shim keeps the other ends)."""
        if self.tty:
            master, slave = pty.openpty()
            self.master = master
            self.outputs[master] = "stdout"
            if self.spec.get("stdin"):
                self.stdin_fd = master
            return [slave, slave, slave]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.outputs = {out_r: "stdout", err_r: "stderr"}
        if self.spec.get("stdin"):
            in_r, in_w = os.pipe()
            self.stdin_fd = in_w
        else:
            in_r = os.open(os.devnull, os.O_RDONLY)
        return [in_r, out_w, err_w]

    def _child(self, fds: list[int], err_w: int) -> None:
        try:
            os.setsid()
            if self.tty:
                fcntl.ioctl(fds[0], termios.TIOCSCTTY, 0)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for procs in self.spec.get("cgroup_procs") or []:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
            for name, value in (self.spec.get("rlimits") or {}).items():
                resource.setrlimit(getattr(resource, name), (int(value), int(value)))
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGCHLD,
                        signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            env = dict(self.spec["env"])
            argv = self.spec["argv"]
            path = _resolve(argv[0], env.get("PATH", ""))
            cwd = self.spec.get("cwd") or "/"
            try:
                os.chdir(cwd)
            except OSError as e:
                raise _Fail(f"chdir to cwd (\"{cwd}\") set in config.json failed: "
                            f"{os.strerror(e.errno or 0).lower()}") from e
            os.execve(path, argv, env)
        except _Fail as e:
            os.write(err_w, str(e).encode())
        except OSError as e:
            os.write(err_w, f"exec: \"{self.spec['argv'][0]}\": "
                            f"{os.strerror(e.errno or 0).lower()}".encode())
        except BaseException as e:  # noqa: BLE001 - the child must never return into the shim
            os.write(err_w, f"failed to start container process: {e}".encode())
        os._exit(128)

    # --- running ----------------------------------------------------------------------------

    def _listen(self) -> socket.socket | None:
        """The attach socket, bound by a relative name from inside the container directory
        (a socket path is limited to 107 bytes; the directory's may be longer).  Without it
        the container still runs, only attach is unavailable."""
        try:
            os.chdir(self.dir)
            with contextlib.suppress(FileNotFoundError):
                os.unlink("attach.sock")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind("attach.sock")
            os.chmod("attach.sock", 0o600)
            s.listen(8)
            s.setblocking(False)
            return s
        except OSError as e:
            print(f"shim: no attach socket: {e}", file=sys.stderr, flush=True)
            return None

    def _loop(self, wake_r: int, listener: socket.socket | None) -> None:
        deadline: float | None = None
        while self.outputs or self.exit_code is None:
            if self.exit_code is not None and deadline is None:
                self._kill_leftovers()
                deadline = time.monotonic() + 5.0
            if deadline is not None and time.monotonic() > deadline:
                break
            due = self.log.flush_idle()
            timeout = 1.0 if due is None else max(0.0, due - time.monotonic())
            rlist: list[Any] = [wake_r, *self.outputs, *self.clients]
            if listener is not None:
                rlist.append(listener)
            wlist = [c for c, st in self.clients.items() if st["out"]]
            try:
                readable, writable, _ = select.select(rlist, wlist, [], timeout)
            except InterruptedError:
                continue
            for r in readable:
                if r == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                    self._reap()
                elif r is listener and listener is not None:
                    self._accept(listener)
                elif isinstance(r, int):
                    self._pump(r)
                else:
                    self._from_client(r)
            for c in writable:
                self._flush_client(c)
            self._reap()
            if self.exit_code is not None:
                self._kill_leftovers()
        for fd in list(self.outputs):
            self._close_output(fd)
        self.log.close()
        for c in list(self.clients):
            self._drop(c)

    def _pump(self, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except OSError as e:
            if e.errno not in (errno.EIO, errno.EBADF):  # EIO: the pty's last writer is gone
                raise
            data = b""
        if not data:
            self._close_output(fd)
            return
        stream = self.outputs[fd]
        self.log.write(stream, data)
        channel = 1 if stream == "stdout" else 2
        for c, st in list(self.clients.items()):
            st["out"] += frame(channel, data)
            if len(st["out"]) > _MAX_CLIENT_BUFFER:
                self._drop(c)  # a client that does not read is cut off, never the container

    def _close_output(self, fd: int) -> None:
        self.outputs.pop(fd, None)
        if fd != self.stdin_fd:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                code = os.waitstatus_to_exitcode(status)
                self.exit_code = 128 - code if code < 0 else code

    def _signal_group(self, sig: int) -> None:
        if self.pid and self.exit_code is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def _kill_leftovers(self) -> None:
        """The container has ended: nothing it started may outlive it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        table = procfs.process_table()
        for pid in procfs.subtree(table, procfs.children(table, os.getpid())):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    # --- attach -----------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            conn, _ = listener.accept()
            conn.setblocking(False)
            self.clients[conn] = {"in": bytearray(), "out": bytearray(), "stdin": False}

    def _from_client(self, c: socket.socket) -> None:
        st = self.clients.get(c)
        if st is None:
            return
        try:
            data = c.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        st["in"] += data
        for channel, payload in read_frames(st["in"]):
            if channel == 254:
                st["stdin"] = bool(json.loads(payload or b"{}").get("stdin"))
                if st["stdin"]:
                    self.stdin_client_seen = True
            elif channel == 0 and self.stdin_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(self.stdin_fd, payload)
            elif channel == 4 and self.master is not None:
                size = json.loads(payload)
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack(
                    "HHHH", int(size.get("Height", 24)), int(size.get("Width", 80)), 0, 0))
            elif channel == 255 and st["stdin"]:
                self._client_stdin_done()

    def _flush_client(self, c: socket.socket) -> None:
        st = self.clients.get(c)
        if st is None:
            return
        try:
            sent = c.send(st["out"])
            del st["out"][:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(c)

    def _drop(self, c: socket.socket) -> None:
        st = self.clients.pop(c, None)
        if st is not None and st["out"] and self.exit_code is not None:
            # the container has ended: hand the client the rest (never while it runs: a
            # client cut off for not reading must not stall the container's output)
            with contextlib.suppress(OSError):
                c.setblocking(True)
                c.settimeout(0.5)
                c.sendall(st["out"])
        c.close()
        if st is not None and st["stdin"]:
            self._client_stdin_done()

    def _client_stdin_done(self) -> None:
        if self.spec.get("stdin_once") and self.stdin_fd is not None and not self.tty:
            with contextlib.suppress(OSError):
                os.close(self.stdin_fd)
            self.stdin_fd = None
        elif self.spec.get("stdin_once") and self.tty and self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")  # end of input on a terminal

    # --- ending -----------------------------------------------------------------------------

    def _finish(self, code: int, reason: str, message: str, started: str) -> None:
        _write_json(os.path.join(self.dir, "exit.json"), {
            "exit_code": code, "reason": reason, "message": message,
            "started_at": started, "finished_at": _now()})


class _Fail(Exception):
    pass


def _exec_helper(args: list[str]) -> None:
    """``--exec <json> <path> <argv...>``: become a process of the container (its cgroup, its
    limits, the pty as controlling terminal when asked), then ``execv``.  Started by the agent
    in a new session, with the container's environment and working directory."""
    spec = json.loads(args[0])
    try:
        if spec.get("tty"):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        for procs in spec.get("cgroup_procs") or []:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        for name, value in (spec.get("rlimits") or {}).items():
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        os.execv(args[1], args[2:])
    except OSError as e:
        print(f"exec: \"{args[2] if len(args) > 2 else '?'}\": {e.strerror}", file=sys.stderr)
        os._exit(126)


def _resolve(command: str, path: str) -> str:
    if "/" in command:
        return command
    found = shutil.which(command, path=path)
    if found is None:
        raise _Fail(f"exec: \"{command}\": executable file not found in $PATH")
    return found
