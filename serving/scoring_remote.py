"""Scoring through a running server's POST /classify, over N parallel HTTP connections.

The main thread reads chunks in order and hands them to N threads, each one request at a time;
results are taken in input order (serving.scoring_local.ordered_map), at most 2 N chunks in
flight. A chunk larger than the server's jets-per-request limit is sent as several requests.
503 (overloaded) is retried after the server's Retry-After, a few times; any other failure
stops the run with the server's message (4xx: the input's fault, exit 2; else exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .preprocess import InputError
from .scoring_io import Chunk, ChunkReader, ScoringError, locate_error
from .scoring_local import ordered_map

MAX_JETS_PER_REQUEST = 10_000  # the server's default limit (JET_TAGGER_MAX_JETS)
RETRIES = 5  # 503s tolerated per request
MAX_RETRY_AFTER_S = 60.0
_sleep = time.sleep  # replaced in tests


class RemoteScorer:
    def __init__(self, name: str, url: str, connections: int = 4, timeout: float = 120.0, transport=None):
        import httpx

        self.name, self.url, self.connections = name, url.rstrip("/"), max(1, connections)
        self.client = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                   limits=httpx.Limits(max_connections=self.connections))
        model, max_jets = self._describe()
        self.classes = list(model["classes"])
        self.identity = {"model": name, "version": model.get("version")}
        self.max_jets = max(1, min(MAX_JETS_PER_REQUEST, int(max_jets or MAX_JETS_PER_REQUEST)))

    def _describe(self) -> tuple[dict, int | None]:
        """The served model (classes, version) and the request limit, from GET /models."""
        body = self._json(self._send("GET", "/models"), "/models")
        served = {m.get("name"): m for m in body.get("models", [])}
        if self.name not in served:
            raise InputError(f"{self.url}: model {self.name!r} is not served; served: {sorted(served)}")
        return served[self.name], body.get("max_jets_per_request")

    def map(self, chunks: list[Chunk]) -> Iterator[np.ndarray]:
        with ThreadPoolExecutor(self.connections, thread_name_prefix="score-http") as pool, \
                ChunkReader() as reader:
            yield from ordered_map(lambda c: pool.submit(self._score_chunk, c, reader.read(c)),
                                   chunks, 2 * self.connections)

    def _score_chunk(self, chunk: Chunk, particles: np.ndarray) -> np.ndarray:
        parts = [self._classify(chunk, particles[i:i + self.max_jets], i)
                 for i in range(0, len(particles), self.max_jets)]
        return np.concatenate(parts)

    def _classify(self, chunk: Chunk, particles: np.ndarray, first: int) -> np.ndarray:
        """Probabilities of one request's jets, rows chunk.start + first onwards."""
        response = self._send("POST", "/classify", json={"model": self.name, "jets": particles.tolist()})
        if 400 <= response.status_code < 500:
            error = locate_error(chunk, _error_text(response), first)  # "jets[i]..." becomes a file and row
            raise InputError(f"{error} ({self.url}/classify answered {response.status_code})")
        body = self._json(response, "/classify")
        probs = np.asarray(body["probabilities"], np.float32)
        if probs.shape != (len(particles), len(self.classes)) or body.get("classes") != self.classes:
            raise ScoringError(f"{self.url}/classify: unexpected answer (shape {probs.shape}, "
                               f"classes {body.get('classes')})")
        return probs

    def _send(self, method: str, path: str, **kwargs):
        """One request, retried after 503 + Retry-After; transport failures are ScoringErrors."""
        import httpx

        for attempt in range(RETRIES + 1):
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.HTTPError as e:
                raise ScoringError(f"{self.url}{path}: {type(e).__name__}: {e}") from None
            if response.status_code != 503 or attempt == RETRIES:
                return response
            _sleep(_retry_after(response))
        raise AssertionError("unreachable")

    def _json(self, response, path: str) -> dict:
        if response.status_code == 503:
            raise ScoringError(f"{self.url}{path}: still overloaded (503) after {RETRIES} retries: "
                               f"{_error_text(response)}")
        if response.status_code != 200:
            raise ScoringError(f"{self.url}{path} answered {response.status_code}: {_error_text(response)}")
        try:
            return response.json()
        except ValueError:
            raise ScoringError(f"{self.url}{path}: the answer is not JSON: {response.text[:200]!r}") from None

    def close(self) -> None:
        self.client.close()


def _retry_after(response) -> float:
    """Seconds to wait before retrying: the Retry-After header (seconds), else 1 s; at most a minute."""
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:  # an HTTP date: rare, and a second is a fair guess
        return 1.0


def _error_text(response) -> str:
    try:
        return str(response.json().get("error", response.text))[:500]
    except (ValueError, AttributeError):
        return response.text[:500]
