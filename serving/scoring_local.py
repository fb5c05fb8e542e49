"""In-process scoring with ONNX Runtime, and the pieces the other scoring backends share.

A scorer has `classes`, `identity` (model name and version, for the resume checkpoint) and
`map(chunks)`, which yields one probability array per chunk, in the order of the chunks.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from .artifacts import CARD_FILE, ArtifactError
from .preprocess import InputError, canonical_particles
from .scoring_io import Chunk, ChunkReader, locate_error


def resolve_model_dir(name: str, models_dir: Path) -> Path:
    """`models_dir/<name>` when exported there, else the model's folder in the BentoML model store."""
    model_dir = Path(models_dir) / name
    if (model_dir / CARD_FILE).is_file():
        return model_dir.resolve()
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(f"{name}:latest").path).resolve()
    except NotFound:
        raise ArtifactError(f"model {name!r} is neither in {models_dir}/ nor in the BentoML model store") from None


def predict_chunk(model, chunk: Chunk, particles: np.ndarray) -> np.ndarray:
    """Serving's preprocessing, then the model; a bad jet is named by its file and row."""
    try:
        x = canonical_particles(particles, model.n_particles)
    except InputError as e:
        raise locate_error(chunk, str(e)) from None
    return model.predict(x)


def ordered_map(submit: Callable, items: Iterable, depth: int) -> Iterator:
    """submit(item) -> a future (concurrent.futures or Dask); at most `depth` in flight, results in order.

    Waiting on the oldest future keeps the output in input order and bounds memory to `depth`
    chunks, however far the fastest workers could otherwise run ahead.
    """
    pending: deque = deque()
    try:
        for item in items:
            pending.append(submit(item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # interrupted: nothing more is needed
            future.cancel()


class LocalScorer:
    """ONNX Runtime in this process; chunks are read and scored one after the other."""

    def __init__(self, name: str, models_dir: Path, threads: int | None = None):
        from .runtime import OnnxModel

        self.model_dir = resolve_model_dir(name, models_dir)
        self.model = OnnxModel.load(self.model_dir, threads=threads)
        card = self.model.card
        self.classes = list(card.classes)
        self.identity = {"model": card.name, "version": card.version}
        print(f"scoring with {name}:{card.version} on {self.model.provider}", file=sys.stderr)

    def map(self, chunks: list[Chunk]) -> Iterator[np.ndarray]:
        with ChunkReader() as reader:
            for chunk in chunks:
                yield predict_chunk(self.model, chunk, reader.read(chunk))

    def close(self) -> None:
        pass
