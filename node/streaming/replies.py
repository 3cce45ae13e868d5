"""The agent's HTTP error answers: Kubernetes ``Status`` JSON, as kubelet writes them, so the
apiserver can hand them to kubectl unchanged."""

from __future__ import annotations

import json

from aiohttp import web

__all__ = ["status_response"]


def status_response(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    return web.Response(status=code, body=json.dumps(body).encode(),
                        content_type="application/json")
