"""Client errors that name the field: BentoML's pydantic 400s rewritten, and no tracebacks for them.

BentoML answers a request that fails its pydantic input model with
`400 {"error": "1 validation error for Input", "detail": [{"loc": ["jets", 0, 1], "msg": ...}]}`
and logs a full traceback. The middleware puts the first field and message into "error"
(`"jets[0][1]: List should have at least 3 items ..."`), keeping "detail"; the log filter drops
those tracebacks, since a bad request is the client's mistake and is already answered.
"""

from __future__ import annotations

import json
import logging


class ModelNotServed(LookupError):
    """A request named a model this server does not serve: unknown (404) or refused at load (503)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def field_path(loc: list) -> str:
    """["jets", 0, 1, 2] -> "jets[0][1][2]"; [] -> "body" (the request body itself)."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def friendly_validation_body(body: bytes) -> bytes:
    try:
        data = json.loads(body)
        detail = data["detail"]
        first = detail[0]
        message = f"{field_path(first.get('loc', []))}: {first['msg']}"
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return body  # not a pydantic validation answer: leave it alone
    if len(detail) > 1:
        message += f" (and {len(detail) - 1} more errors in detail)"
    return json.dumps({**data, "error": message}).encode()


class FieldErrorMiddleware:
    """ASGI middleware rewriting 400 validation answers (only those are buffered)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message):
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] != 400:
                    return await send(message)
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = friendly_validation_body(b"".join(chunks))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


class _DropValidationTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


def quiet_validation_logs() -> None:
    logging.getLogger("bentoml._internal.server.http_app").addFilter(_DropValidationTracebacks())
