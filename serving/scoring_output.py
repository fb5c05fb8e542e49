"""Batch-scoring results: the resumable store of finished chunks, and the CSV or Parquet output.

Scores go first to a sidecar folder beside the output, `<output>.partial/`: `probs.f32` (the
float32 probabilities of the finished chunks, in input order) and `checkpoint.json` (how many
chunks and jets are done, and a fingerprint of input, chunk size and model). The checkpoint is
replaced atomically after each chunk's probabilities are appended, so a killed run leaves a
consistent prefix (bytes past the checkpoint, a half-written chunk, are cut off on resume). The
output is then written from the store in one pass, atomically, and the sidecar is removed. Every
column but the probabilities follows from the input plan, so a resumed run's output is the same,
byte for byte, as an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Self

import numpy as np

from .artifacts import atomic_path
from .preprocess import InputError
from .scoring_io import JETNET_CLASSES, Chunk, Source

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
PROBS_FILE, CHECKPOINT_FILE = "probs.f32", "checkpoint.json"


def output_format(output: Path) -> str:
    fmt = FORMATS.get(Path(output).suffix.lower())
    if fmt is None:
        raise InputError(f"{output}: the output must end in .csv or .parquet")
    return fmt


def fingerprint(sources: list[Source], chunk: int, identity: dict, classes: list[str]) -> dict:
    """What a checkpoint's results depend on; a resume with anything else changed starts nothing."""
    files = []
    for s in sources:
        stat = s.path.stat()
        files.append([str(s.path), stat.st_size, stat.st_mtime_ns, s.n_jets, s.truth])
    return {"format": 1, "inputs": files, "chunk": chunk, "model": identity, "classes": list(classes)}


class ResultStore:
    """Probabilities of the finished chunks, appended in order, with an atomic checkpoint."""

    def __init__(self, output: Path, fingerprint: dict, n_classes: int, resume: bool):
        self.dir = Path(output).with_name(Path(output).name + ".partial")
        self.fingerprint, self.n_classes = fingerprint, n_classes
        self.chunks_done = self.jets_done = 0
        if resume and (self.dir / CHECKPOINT_FILE).is_file():
            self._load()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            self._save()
        # open for the store's life (closed by close/remove): one append per chunk
        self._probs = open(self.dir / PROBS_FILE, "r+b" if (self.dir / PROBS_FILE).exists() else "w+b")  # noqa: SIM115
        self._probs.truncate(self.jets_done * self._row_bytes)  # drop a half-written chunk
        self._probs.seek(0, 2)

    @property
    def _row_bytes(self) -> int:
        return 4 * self.n_classes

    def _load(self) -> None:
        path = self.dir / CHECKPOINT_FILE
        try:
            state = json.loads(path.read_text())
            done, jets = int(state["chunks_done"]), int(state["jets_done"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: unreadable checkpoint ({e}); remove {self.dir} to start over") from None
        if state.get("fingerprint") != self.fingerprint:
            raise InputError(f"{path}: the checkpoint is for another input, chunk size or model version; "
                             f"run without --resume (or remove {self.dir}) to start over")
        size = (self.dir / PROBS_FILE).stat().st_size if (self.dir / PROBS_FILE).exists() else 0
        if size < jets * self._row_bytes:
            raise InputError(f"{self.dir / PROBS_FILE}: shorter than its checkpoint; remove {self.dir} to start over")
        self.chunks_done, self.jets_done = done, jets

    def _save(self) -> None:
        state = {"chunks_done": self.chunks_done, "jets_done": self.jets_done, "fingerprint": self.fingerprint}
        with atomic_path(self.dir / CHECKPOINT_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=1))

    def append(self, probs: np.ndarray) -> None:
        self._probs.write(np.ascontiguousarray(probs, "<f4").tobytes())
        self._probs.flush()  # the data reaches the OS before the checkpoint that counts it
        self.chunks_done += 1
        self.jets_done += len(probs)
        self._save()

    def read(self, start: int, n: int) -> np.ndarray:
        """Probabilities of jets [start, start + n) in input order."""
        self._probs.seek(start * self._row_bytes)
        data = self._probs.read(n * self._row_bytes)
        return np.frombuffer(data, "<f4").reshape(n, self.n_classes)

    def close(self) -> None:
        self._probs.close()

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def write_output(output: Path, plan: list[Chunk], store: ResultStore, classes: list[str], truth_known: bool,
                 on_chunk: Callable[[int], None] = lambda n: None) -> np.ndarray:
    """Write every jet's row (index, file, row, p_*, label[, truth]) atomically; returns the confusion matrix."""
    writer = {"csv": _CsvWriter, "parquet": _ParquetWriter}[output_format(output)]
    confusion = np.zeros((len(JETNET_CLASSES),) * 2, np.int64)
    with atomic_path(output) as tmp, writer(tmp, classes, truth_known) as out:
        for chunk in plan:
            probs = store.read(chunk.offset, len(chunk))
            labels = probs.argmax(axis=1)
            out.write(chunk, probs, labels)
            if truth_known:
                np.add.at(confusion, (chunk.source.truth, labels), 1)
            on_chunk(len(chunk))
    return confusion


def _header(classes: list[str], truth_known: bool) -> list[str]:
    return ["index", "file", "row", *(f"p_{c}" for c in classes), "label", *(["truth"] if truth_known else [])]


class _CsvWriter:
    def __init__(self, path: Path, classes: list[str], truth_known: bool):
        import csv

        self._file = open(path, "w", newline="")  # noqa: SIM115 (closed by __exit__)
        self._csv = csv.writer(self._file)
        self._classes, self._truth_known = classes, truth_known
        self._csv.writerow(_header(classes or list(JETNET_CLASSES), truth_known))

    def write(self, chunk: Chunk, probs: np.ndarray, labels: np.ndarray) -> None:
        name, classes = chunk.source.path.name, self._classes
        truth = [JETNET_CLASSES[chunk.source.truth]] if self._truth_known else []
        self._csv.writerows(
            [chunk.offset + i, name, chunk.start + i, *(f"{v:.6g}" for v in p), classes[label], *truth]
            for i, (p, label) in enumerate(zip(probs, labels)))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


class _ParquetWriter:
    """One row group per chunk; probabilities kept as float32, exactly as scored."""

    def __init__(self, path: Path, classes: list[str], truth_known: bool):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa, self._classes, self._truth_known = pa, np.array(classes, dtype=object), truth_known
        fields = [("index", pa.int64()), ("file", pa.string()), ("row", pa.int64()),
                  *((f"p_{c}", pa.float32()) for c in classes), ("label", pa.string()),
                  *([("truth", pa.string())] if truth_known else [])]
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(path, self._schema)

    def write(self, chunk: Chunk, probs: np.ndarray, labels: np.ndarray) -> None:
        pa, n = self._pa, len(chunk)
        columns = [np.arange(chunk.offset, chunk.offset + n), [chunk.source.path.name] * n,
                   np.arange(chunk.start, chunk.stop), *(probs[:, i] for i in range(probs.shape[1])),
                   self._classes[labels]]
        if self._truth_known:
            columns.append([JETNET_CLASSES[chunk.source.truth]] * n)
        self._writer.write_table(pa.Table.from_arrays(
            [pa.array(c, f.type) for c, f in zip(columns, self._schema)], schema=self._schema))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()
