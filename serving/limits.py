"""Request limits: body size (413 before a large body is read into memory) and body type (415).

A POST body must be JSON: Content-Type application/json (or any +json type), or none at all
(curl -d aside, clients that send none mean JSON); the Open Inference Protocol's binary tensor
extension may also say application/octet-stream. Anything else (text/plain, XML, forms) is a 415
that names the header, rather than a guess at what the client meant.

JET_TAGGER_MAX_BODY_MB (default 128) bounds a request body, also after gzip/deflate
decompression on the Open Inference Protocol endpoint; JET_TAGGER_MAX_JETS (default 10 000)
bounds the jets in one request (checked by the endpoints); JET_TAGGER_REQUEST_TIMEOUT_S (default
30) bounds how long a request may wait for its model (queue and run) before it is answered with
503 + Retry-After, so an overloaded server says so instead of leaving clients hanging.
"""

from __future__ import annotations

import asyncio
import json
import os

MAX_BODY_BYTES = int(float(os.environ.get("JET_TAGGER_MAX_BODY_MB", "128")) * 1024 * 1024)
MAX_JETS = int(os.environ.get("JET_TAGGER_MAX_JETS", "10000"))
REQUEST_TIMEOUT_S = float(os.environ.get("JET_TAGGER_REQUEST_TIMEOUT_S", "30"))


class ContentTypeMiddleware:
    """415 for a POST whose Content-Type is neither JSON nor (for /v2) application/octet-stream."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST":
            header = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
            media_type = header.split(";", 1)[0].strip().lower()
            allowed = media_type in ("", "application/json") or media_type.endswith("+json") or (
                media_type == "application/octet-stream" and scope.get("path", "").startswith("/v2/"))
            if not allowed:
                return await _send_error(send, 415, f"Content-Type: {header[:100]!r} is not supported; "
                                                    "send the body as application/json")
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for bodies over MAX_BODY_BYTES: by Content-Length up front, or while a chunked body streams."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = MAX_BODY_BYTES
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                return await _reject(send, limit)
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): read it here, within the limit, then replay it to the app.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await _reject(send, limit)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _replay(messages: list[dict], receive=None):
    async def replayed():
        if messages:
            return messages.pop(0)
        return await receive() if receive else {"type": "http.disconnect"}
    return replayed


async def _reject(send, limit: int) -> None:
    await _send_error(send, 413, f"body: larger than the limit of {limit} bytes "
                                 "(JET_TAGGER_MAX_BODY_MB); send fewer jets per request")


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def cancel_bentoml_request_timers() -> None:
    """Make BentoML's TimeoutMiddleware cancel its per-request timer once the request is done.

    BentoML 1.4.40 schedules `call_later(traffic timeout)` for every request and never cancels it,
    so each request's timer and future live on for the whole timeout (60 s here): under a few
    hundred requests a second the worker's RSS climbs for a minute before it levels off (measured
    +60 MB with the timers, flat without; tests/test_fuzz.py's soak test checks it). Our own
    JET_TAGGER_REQUEST_TIMEOUT_S answers first anyway; this keeps BentoML's as the last resort.
    """
    from bentoml._internal.server.http import traffic

    middleware = traffic.TimeoutMiddleware
    if getattr(middleware, "_timers_cancelled", False):
        return

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message):
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, _send))
        try:
            await waiter
        except asyncio.TimeoutError:
            if task.cancel():
                await _send_error(send, 504, f"Not able to process the request in {self.timeout} seconds")
        else:
            await task
        finally:
            timer.cancel()

    middleware.__call__ = __call__
    middleware._timers_cancelled = True
