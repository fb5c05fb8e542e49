"""Scoring on a Dask cluster: one task per chunk, in-process ONNX Runtime on the workers.

`--scheduler tcp://HOST:8786` uses a running cluster; `--scheduler local` starts a LocalCluster on
this machine (`--workers N` processes, one thread each; default: one per core). A task gets the
model folder's path and the chunk's file and row range, reads the rows itself and scores them
with a model loaded once per worker process: neither the jets nor an ONNX session travel from
the client, so workers need the same files at the same paths (a shared file system) and this
package installed. Results come back in input order (at most 2 tasks per worker thread in flight).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np

from .artifacts import read_card
from .scoring_io import Chunk, ChunkReader, ScoringError
from .scoring_local import ordered_map, predict_chunk, resolve_model_dir

_models: dict[str, object] = {}  # model folder -> OnnxModel, per worker process
_models_lock = threading.Lock()


def _worker_model(model_dir: str):
    with _models_lock:  # tasks on a multi-threaded worker must not load the model twice
        if model_dir not in _models:
            from .runtime import OnnxModel

            # one ONNX Runtime thread per task: Dask's worker threads already use every core
            _models[model_dir] = OnnxModel.load(Path(model_dir), threads=1)
        return _models[model_dir]


def score_partition(model_dir: str, chunk: Chunk) -> np.ndarray:
    """The Dask task: read one chunk on the worker and score it there."""
    with ChunkReader() as reader:
        particles = reader.read(chunk)
    return predict_chunk(_worker_model(model_dir), chunk, particles)


class DaskScorer:
    def __init__(self, name: str, models_dir: Path, scheduler: str, workers: int | None = None):
        self.model_dir = resolve_model_dir(name, models_dir)
        card = read_card(self.model_dir)  # the workers verify the ONNX file's sha256 when they load it
        self.classes = list(card.classes)
        self.identity = {"model": card.name, "version": card.version}
        self.cluster, self.client = _connect(scheduler, workers)
        threads = self._threads()
        print(f"scoring with {name}:{card.version} on Dask at {self.client.scheduler.address} "
              f"({len(self.client.nthreads())} workers, {threads} threads)", file=sys.stderr)

    def _threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def map(self, chunks: list[Chunk]) -> Iterator[np.ndarray]:
        from distributed import KilledWorker

        def submit(chunk: Chunk):
            return self.client.submit(score_partition, str(self.model_dir), chunk, pure=False)

        try:
            yield from ordered_map(submit, chunks, 2 * self._threads())
        except (KilledWorker, CancelledError, OSError, TimeoutError) as e:
            raise ScoringError(f"Dask: {type(e).__name__}: {e}") from None

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _connect(scheduler: str, workers: int | None):
    """(LocalCluster or None, Client) for `local` or a scheduler address."""
    from distributed import Client, LocalCluster

    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            return cluster, Client(cluster)
        return None, Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as e:
        raise ScoringError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
