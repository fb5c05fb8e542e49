"""Adaptive batching per model: concurrent requests' jets share one ONNX Runtime call.

BentoML's own adaptive batching applies to a `batchable` API that takes exactly one array over
HTTP; /classify takes a model name and ragged jets, so it would need a second service and an extra
network hop per request. Instead each model gets this small asyncio batcher (the Triton dynamic
batcher's rules): while the model is busy, requests queue; the next run takes everything queued
up to `max_batch_size` jets, waiting at most `max_latency_ms` for more when the batch is not full.
The queue is bounded: past `max_queued_jets` a request is refused with `Overloaded` (HTTP 503 +
Retry-After) instead of waiting without limit.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np


class Overloaded(RuntimeError):
    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 2048  # jets per ONNX Runtime call (a larger single request runs alone)
    max_latency_ms: float = 2.0  # extra wait for a fuller batch; the queue itself batches under load
    max_queued_jets: int = 200_000  # beyond this, shed load with 503 rather than time out

    @classmethod
    def from_env(cls) -> BatchingConfig:
        """JET_TAGGER_MAX_BATCH_SIZE, JET_TAGGER_MAX_LATENCY_MS, JET_TAGGER_MAX_QUEUED_JETS."""
        default = cls()
        return cls(int(os.environ.get("JET_TAGGER_MAX_BATCH_SIZE", default.max_batch_size)),
                   float(os.environ.get("JET_TAGGER_MAX_LATENCY_MS", default.max_latency_ms)),
                   int(os.environ.get("JET_TAGGER_MAX_QUEUED_JETS", default.max_queued_jets)))


class MicroBatcher:
    def __init__(self, infer: Callable[[np.ndarray], np.ndarray], config: BatchingConfig = BatchingConfig(),
                 on_batch: Callable[[int, int, float], None] | None = None):
        self.infer, self.config, self.on_batch = infer, config, on_batch
        self._queue: deque[tuple[np.ndarray, asyncio.Future]] = deque()
        self._queued_jets = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._queued_jets + len(x) > self.config.max_queued_jets and self._queue:
            raise Overloaded(f"{self._queued_jets} jets are already queued for this model; retry shortly")
        self._ensure_worker()
        future = self._loop.create_future()
        self._queue.append((x, future))
        self._queued_jets += len(x)
        self._arrived.set()
        return await future

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first call, or a new event loop (e.g. asyncio.run in tests)
            self._loop, self._arrived = loop, asyncio.Event()
            self._queue.clear()
            self._queued_jets = 0
            self._worker = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue:
                await self._fill()
                await self._run_batch(self._take())

    async def _fill(self) -> None:
        """Wait up to max_latency_ms for the batch to fill, from the first request's arrival."""
        deadline = time.monotonic() + self.config.max_latency_ms / 1000
        while self._queued_jets < self.config.max_batch_size and (wait := deadline - time.monotonic()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), wait)
            except asyncio.TimeoutError:
                break

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        batch, n = [], 0
        while self._queue and (not batch or n + len(self._queue[0][0]) <= self.config.max_batch_size):
            x, future = self._queue.popleft()
            self._queued_jets -= len(x)
            if not future.cancelled():  # the client went away: do not spend the model on it
                batch.append((x, future))
                n += len(x)
        return batch

    async def _run_batch(self, batch: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        if not batch:
            return
        start = time.perf_counter()
        try:
            x = np.concatenate([x for x, _ in batch]) if len(batch) > 1 else batch[0][0]
            y = await asyncio.to_thread(self.infer, x)
        except Exception as e:  # one failed run fails its requests, never the batcher
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        if self.on_batch:
            self.on_batch(len(batch), len(x), time.perf_counter() - start)
        offset = 0
        for xi, future in batch:
            if not future.done():
                future.set_result(y[offset:offset + len(xi)])
            offset += len(xi)
