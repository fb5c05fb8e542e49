"""Request size limits, answered with 413 before a large body is read into memory.

JET_TAGGER_MAX_BODY_MB (default 128) bounds a request body, also after gzip/deflate
decompression on the Open Inference Protocol endpoint; JET_TAGGER_MAX_JETS (default 10 000)
bounds the jets in one request (checked by the endpoints); JET_TAGGER_REQUEST_TIMEOUT_S (default
30) bounds how long a request may wait for its model (queue and run) before it is answered with
503 + Retry-After, so an overloaded server says so instead of leaving clients hanging.
"""

from __future__ import annotations

import json
import os

MAX_BODY_BYTES = int(float(os.environ.get("JET_TAGGER_MAX_BODY_MB", "128")) * 1024 * 1024)
MAX_JETS = int(os.environ.get("JET_TAGGER_MAX_JETS", "10000"))
REQUEST_TIMEOUT_S = float(os.environ.get("JET_TAGGER_REQUEST_TIMEOUT_S", "30"))


class _TooLarge(Exception):
    pass


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
    body = json.dumps({"error": f"body: larger than the limit of {limit} bytes "
                                "(JET_TAGGER_MAX_BODY_MB); send fewer jets per request"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
