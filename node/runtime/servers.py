"""The programs behind the catalog's server images, each run as a container's process:
``nginx`` and ``httpd`` (a page, ``/healthz``, and the files of a volume mounted at the image's
document root), ``echo`` (every request answered with a JSON account of itself) and ``pause``
(sleeps until told to stop).

Standard library only, started by ``images.python_program`` in an isolated interpreter.  What
the process knows comes from its environment, set by the process runtime: ``POD_IP`` (the
address to bind), ``KETCH_PORTS`` (the container's TCP ports, comma-separated; else the image's
default), ``KETCH_MOUNTS`` (JSON: container path -> host directory).  Access lines go to stdout
and errors to stderr, as nginx's do, so ``kubectl logs`` shows them.  SIGTERM stops a server
cleanly with exit code 0.
"""

from __future__ import annotations

import json
import mimetypes
import os
import posixpath
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .network import pod_port

__all__ = ["main"]

_NGINX_PAGE = b"""<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
<p><em>Thank you for using nginx.</em> (served by ketch's process runtime)</p>
</body>
</html>
"""
_HTTPD_PAGE = b"<html><body><h1>It works!</h1></body></html>\n"
_DEFAULTS = {"nginx": (80, "/usr/share/nginx/html", _NGINX_PAGE, "nginx/1.27.0 (ketch)"),
             "httpd": (80, "/usr/local/apache2/htdocs", _HTTPD_PAGE, "Apache/2.4 (ketch)"),
             "echo": (8080, "", b"", "ketch-echo")}


def main(argv: list[str]) -> None:
    kind = argv[0] if argv else "pause"
    signal.signal(signal.SIGTERM, lambda *_: _stop.set())
    signal.signal(signal.SIGINT, lambda *_: _stop.set())
    if kind == "pause":
        _stop.wait()
        return
    if kind not in _DEFAULTS:
        print(f"unknown server {kind!r}", file=sys.stderr)
        sys.exit(2)
    default_port, docroot, page, banner = _DEFAULTS[kind]
    ports = [int(p) for p in os.environ.get("KETCH_PORTS", "").split(",") if p.strip()] \
        or [default_port]
    mounts = json.loads(os.environ.get("KETCH_MOUNTS") or "{}")
    handler = _handler(kind, mounts.get(docroot), page, banner)
    servers = []
    for port in ports:
        try:
            servers.append(_serve(os.environ.get("POD_IP") or "0.0.0.0", port, handler))
        except OSError as e:
            print(f"[emerg] bind() to {os.environ.get('POD_IP')}:{port} failed ({e})",
                  file=sys.stderr, flush=True)
            sys.exit(1)
    _stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()


_stop = threading.Event()


def _serve(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    real = pod_port(port)
    server = ThreadingHTTPServer((host, real), handler, bind_and_activate=False)
    server.daemon_threads = True
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.server_bind()
    server.server_activate()
    if real != port:
        print(f"[notice] port {port} is privileged on this host: serving it on {real}",
              file=sys.stderr, flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _handler(kind: str, docroot: str | None, page: bytes,
             banner: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = banner
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return banner

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_POST(self) -> None:
            self._answer(with_body=True)

        do_PUT = do_POST
        do_DELETE = do_POST
        do_PATCH = do_POST

        def _answer(self, with_body: bool) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok\n", "text/plain", with_body)
            elif kind == "echo":
                self._send(200, json.dumps(_echo(self, body), indent=2).encode() + b"\n",
                           "application/json", with_body)
            else:
                status, data, ctype = _static(docroot, path, page)
                self._send(status, data, ctype, with_body)

        def _send(self, status: int, data: bytes, ctype: str, with_body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stdout.write(f"{self.address_string()} - - [{self.log_date_time_string()}] "
                             f"{format % args} \"{self.headers.get('User-Agent', '-')}\"\n")
            sys.stdout.flush()

    return Handler


def _echo(req: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
    return {"method": req.command, "path": req.path, "headers": dict(req.headers.items()),
            "body": body.decode(errors="replace"), "client": req.client_address[0],
            "host": os.environ.get("HOSTNAME", ""), "podIP": os.environ.get("POD_IP", "")}


def _static(docroot: str | None, path: str, page: bytes) -> tuple[int, bytes, str]:
    rel = posixpath.normpath("/" + path).lstrip("/")
    if docroot:
        full = os.path.join(docroot, rel)
        if os.path.isdir(full):
            full = os.path.join(full, "index.html")
        if os.path.realpath(full).startswith(os.path.realpath(docroot)) and os.path.isfile(full):
            with open(full, "rb") as f:
                return 200, f.read(), mimetypes.guess_type(full)[0] or "application/octet-stream"
    if rel in ("", "index.html"):
        return 200, page, "text/html"
    return 404, b"<html><body><h1>404 Not Found</h1></body></html>\n", "text/html"
