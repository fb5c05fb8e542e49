"""Request ids, one structured (JSON) access-log line per request, and per-model Prometheus metrics.

Every HTTP request gets an id: the caller's `X-Request-ID` when it sends a sane one, else a new
one; it comes back in the `X-Request-ID` response header and in the log line, so a physicist's
failed request can be found in the server log. The endpoints note which model served the request
and how many jets it carried (`note_request`); the middleware adds method, path, status and
latency when the response is sent and logs it as JSON on `bentoml.jet_tagger.access`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

import bentoml

access_log = logging.getLogger("bentoml.jet_tagger.access")  # under bentoml: its handlers apply
_current: contextvars.ContextVar[dict | None] = contextvars.ContextVar("jet_tagger_request", default=None)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # no control characters or log injection

requests_counter = bentoml.metrics.Counter(
    name="jet_tagger_requests", documentation="Inference requests per model, endpoint and outcome",
    labelnames=["model", "endpoint", "outcome"])
latency_histogram = bentoml.metrics.Histogram(
    name="jet_tagger_request_seconds", documentation="Time from a request's arrival at the model to its answer",
    labelnames=["model", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def note_request(**fields) -> None:
    """Add fields (model, jets, ...) to the current request's access-log line."""
    record = _current.get()
    if record is not None:
        record.update(fields)


def current_request_id() -> str | None:
    record = _current.get()
    return record["request_id"] if record else None


def observe(model: str, endpoint: str, outcome: str, seconds: float) -> None:
    requests_counter.labels(model=model, endpoint=endpoint, outcome=outcome).inc()
    if outcome == "ok":
        latency_histogram.labels(model=model, endpoint=endpoint).observe(seconds)


class RequestLogMiddleware:
    """ASGI middleware: request id in and out, one JSON access-log line per request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in ("/livez", "/readyz", "/metrics"):
            return await self.app(scope, receive, send)  # probes and scrapes would drown the log
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        record = {"request_id": request_id, "method": scope.get("method"), "path": scope.get("path")}
        token = _current.set(record)
        start = time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record["duration_ms"] = round(1000 * (time.perf_counter() - start), 2)
            record.setdefault("status", 500)  # nothing was sent: the app failed before answering
            access_log.info(json.dumps(record))
            _current.reset(token)
