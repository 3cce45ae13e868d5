"""One fuzz request and how it is sent: through aiohttp, or byte by byte over a raw TLS
stream for what aiohttp will not send (a request line with raw bytes, a body that trickles
in or stops short).  Every send is bounded in time; running out of it is a *hang*."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

__all__ = ["Answer", "Req", "send"]

#: How long any answer may take (a watch ends by its timeoutSeconds well before).
DEADLINE = 30.0


@dataclass
class Req:
    """A request to make.  ``path`` is sent as given (already %-encoded); ``mode`` is
    ``normal``, ``raw`` (request line sent as bytes), ``slow`` (the body trickles in) or
    ``truncated`` (the connection closes before the body is complete: no answer expected)."""

    family: str
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    mode: str = "normal"
    #: a name that only this request uses (``fz…z``), so its trace in the store is its own
    marker: str = ""
    #: the pooled object this request targets (resource path), to check after a refusal
    pooled: str = ""

    def describe(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query)
        body = "" if self.body is None else f" body[{len(self.body)}]={self.body[:160]!r}"
        ct = self.headers.get("Content-Type", "")
        return f"[{self.family}/{self.mode}] {self.method} {self.path}{'?' + q if q else ''}" \
               f"{' (' + ct + ')' if ct else ''}{body}"


@dataclass
class Answer:
    status: int  # 0: no HTTP answer (connection closed or hang)
    body: bytes = b""
    hang: bool = False
    error: str = ""


def _url(base: str, req: Req) -> URL:
    from urllib.parse import quote

    q = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in req.query)
    return URL(base + req.path + (f"?{q}" if q else ""), encoded=True)


async def _aiohttp(session: aiohttp.ClientSession, base: str, req: Req) -> Answer:
    async with session.request(req.method, _url(base, req), data=req.body,
                               headers=req.headers, skip_auto_headers=("Content-Type",),
                               allow_redirects=False) as r:
        return Answer(r.status, await r.read())


async def _raw(base: str, ctx: ssl.SSLContext, req: Req) -> Answer:
    u = urlsplit(base)
    reader, writer = await asyncio.open_connection(u.hostname, u.port, ssl=ctx)
    try:
        q = "&".join(f"{k}={v}" for k, v in req.query)
        target = req.path + (f"?{q}" if q else "")
        body = req.body or b""
        head = [f"{req.method} ".encode() + target.encode("utf-8", "surrogateescape")
                + b" HTTP/1.1", f"Host: {u.hostname}:{u.port}".encode(), b"Connection: close"]
        head += [f"{k}: {v}".encode("utf-8", "surrogateescape") for k, v in req.headers.items()]
        head.append(f"Content-Length: {len(body)}".encode())
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        if req.mode == "slow":
            step = max(1, len(body) // 4)
            for i in range(0, len(body), step):
                writer.write(body[i:i + step])
                await writer.drain()
                await asyncio.sleep(0.4)
        elif req.mode == "truncated":
            writer.write(body[: len(body) // 2])
            await writer.drain()
            return Answer(0)
        else:
            writer.write(body)
        await writer.drain()
        data = b""
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except (ConnectionResetError, ssl.SSLError):
            if not data:  # the server may close without a TLS close_notify after answering
                raise
        line = data.split(b"\r\n", 1)[0].split()
        status = int(line[1]) if len(line) > 1 and line[1].isdigit() else 0
        return Answer(status, data.split(b"\r\n\r\n", 1)[-1])
    finally:
        writer.close()


async def send(session: aiohttp.ClientSession, ctx: ssl.SSLContext, base: str,
               req: Req, deadline: float = DEADLINE) -> Answer:
    """Send ``req``; an answer, or one with ``hang`` when none came within ``deadline``."""
    try:
        async with asyncio.timeout(deadline):
            if req.mode == "normal":
                return await _aiohttp(session, base, req)
            return await _raw(base, ctx, req)
    except TimeoutError:
        return Answer(0, hang=True, error=f"no answer within {deadline:.0f} s")
    except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as e:
        return Answer(0, error=f"{type(e).__name__}: {e}")
