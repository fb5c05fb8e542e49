"""Batch-scoring inputs, read chunk by chunk so that memory follows the chunk size, not the input.

Formats, chosen by the file suffix (anything else is read as HDF5):
- HDF5 (.hdf5, .h5): JetNet layout, dataset `particle_features`, float [N, P, 3 or 4];
- NumPy (.npy): float [N, P, 3 or 4], memory-mapped;
- Parquet (.parquet, .pq): one row per jet, column `particles` of type list<list<float>>: a jet is
  a list of particles, a particle [etarel, phirel, ptrel] or [etarel, phirel, ptrel, mask]
  (fixed_size_list and large_list work too; float32 or float64). Jets may have different numbers
  of particles; within a row group all particles have the same width (3 or 4). Row groups are
  read one after the other, so keep them at most ~100 000 jets to keep memory low.
A particle's features are those of serving.preprocess (mask-0 particles are padding).
A directory holds one file per class, {g,q,t,w,z}.<suffix>: the file name is the truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from .preprocess import InputError

JETNET_CLASSES = ("g", "q", "t", "w", "z")
SUFFIXES = {".hdf5": "hdf5", ".h5": "hdf5", ".npy": "npy", ".parquet": "parquet", ".pq": "parquet"}
HDF5_DATASET = "particle_features"
PARQUET_COLUMN = "particles"


class ScoringError(RuntimeError):
    """A scoring backend failed (server, network, Dask cluster): not the input's fault."""


@dataclass(frozen=True)
class Source:
    """One input file, already checked: its format, number of jets and truth class (if known)."""

    path: Path
    kind: str
    n_jets: int
    truth: int | None


@dataclass(frozen=True)
class Chunk:
    """Rows [start, stop) of one source; `offset` is the first row's index in the whole input."""

    source: Source
    start: int
    stop: int
    offset: int

    def __len__(self) -> int:
        return self.stop - self.start

    def where(self) -> str:
        return f"{self.source.path} rows {self.start}-{self.stop - 1}"


def find_sources(path: Path) -> list[Source]:
    """The checked input files: a class-per-file directory, or a single file without truth."""
    path = Path(path)
    if path.is_dir():
        found = [(_class_file(path, c), i) for i, c in enumerate(JETNET_CLASSES)]
        found = [(f, i) for f, i in found if f is not None]
        if not found:
            names = ", ".join(f"{c}.hdf5" for c in JETNET_CLASSES)
            raise InputError(f"{path}: no JetNet files ({names}; or .npy / .parquet) found")
    elif path.is_file():
        found = [(path, None)]
    else:
        raise InputError(f"{path}: no such file or directory")
    return [_inspect(f.resolve(), truth) for f, truth in found]


def _class_file(directory: Path, name: str) -> Path | None:
    files = [directory / f"{name}{s}" for s in SUFFIXES if (directory / f"{name}{s}").is_file()]
    if len(files) > 1:
        raise InputError(f"{directory}: more than one file for class {name!r} ({', '.join(f.name for f in files)})")
    return files[0] if files else None


def plan_chunks(sources: list[Source], chunk: int) -> list[Chunk]:
    """Chunks never span two files, so each chunk is read from one file and one place in it."""
    plan, offset = [], 0
    for source in sources:
        for start in range(0, source.n_jets, chunk):
            stop = min(start + chunk, source.n_jets)
            plan.append(Chunk(source, start, stop, offset))
            offset += stop - start
    return plan


def locate_error(chunk: Chunk, message: str, first: int = 0) -> InputError:
    """Preprocessing names `jets[i]` counted from the chunk's row `first`; name the file and row instead."""
    m = re.match(r"jets\[(\d+)\](.*)", message, re.DOTALL)
    if m:
        return InputError(f"{chunk.source.path} row {chunk.start + first + int(m[1])}: jet{m[2]}")
    return InputError(f"{chunk.where()}: {message}")


# ---- checking a file before anything is scored ----

def _inspect(path: Path, truth: int | None) -> Source:
    kind = SUFFIXES.get(path.suffix.lower(), "hdf5")
    n_jets = {"hdf5": _inspect_hdf5, "npy": _inspect_npy, "parquet": _inspect_parquet}[kind](path)
    return Source(path, kind, n_jets, truth)


def _check_array(path: Path, name: str, shape: tuple, dtype: np.dtype) -> int:
    if len(shape) != 3 or shape[2] not in (3, 4) or shape[1] < 1:
        raise InputError(f"{path}: {name} has shape {tuple(shape)}, expected (N, P, 3 or 4)")
    if not np.issubdtype(dtype, np.floating):
        raise InputError(f"{path}: {name} has dtype {dtype}, expected float32")
    return int(shape[0])


def _inspect_hdf5(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            data = f.get(HDF5_DATASET)
            if not isinstance(data, h5py.Dataset):
                raise InputError(f"{path}: no dataset {HDF5_DATASET!r} (JetNet layout); it has {sorted(f)}")
            return _check_array(path, HDF5_DATASET, data.shape, data.dtype)
    except OSError as e:
        raise InputError(f"{path}: not a readable JetNet-layout HDF5 file ({e})") from None


def _inspect_npy(path: Path) -> int:
    array = _load_npy(path)
    return _check_array(path, "array", array.shape, array.dtype)


def _load_npy(path: Path) -> np.memmap:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under an .npy name
        raise InputError(f"{path}: not a .npy array (an .npz archive?)")
    return array


def _inspect_parquet(path: Path) -> int:
    import pyarrow as pa

    try:
        schema = _parquet_file(path).schema_arrow
    except (OSError, ValueError, pa.ArrowException) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None
    if PARQUET_COLUMN not in schema.names:
        raise InputError(f"{path}: no column {PARQUET_COLUMN!r} (list<list<float>>, one row per jet); "
                         f"columns: {schema.names}")
    _check_particles_type(path, schema.field(PARQUET_COLUMN).type)
    return _parquet_file(path).metadata.num_rows


def _parquet_file(path: Path):
    import pyarrow.parquet as pq

    return pq.ParquetFile(path)


def _check_particles_type(path: Path, dtype) -> None:
    import pyarrow as pa

    def is_list(t):
        return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)

    ok = is_list(dtype) and is_list(dtype.value_type) and pa.types.is_floating(dtype.value_type.value_type)
    if ok and pa.types.is_fixed_size_list(dtype.value_type):
        ok = dtype.value_type.list_size in (3, 4)
    if not ok:
        raise InputError(f"{path}: column {PARQUET_COLUMN!r} has type {dtype}, expected list<list<float>> "
                         "(jets of particles [etarel, phirel, ptrel(, mask)])")


# ---- reading chunks ----

class ChunkReader:
    """Reads chunks, keeping the current file open; switching files closes the previous one."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._handle = None

    def read(self, chunk: Chunk) -> np.ndarray:
        """Raw particles (n, P, 3 or 4) of a chunk; any read failure is an InputError naming the rows."""
        try:
            if chunk.source.path != self._path:
                self.close()
                self._handle = _HANDLES[chunk.source.kind](chunk.source.path)
                self._path = chunk.source.path
            x = self._handle.read(chunk.start, chunk.stop)
        except InputError as e:
            raise locate_error(chunk, str(e)) from None
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # pyarrow's errors included
            raise InputError(f"{chunk.where()}: unreadable ({type(e).__name__}: {e})") from None
        if len(x) != len(chunk):
            raise InputError(f"{chunk.where()}: read {len(x)} jets, expected {len(chunk)} (file changed?)")
        return x

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = self._path = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Hdf5Handle:
    def __init__(self, path: Path):
        import h5py

        try:
            self._file = h5py.File(path, "r")
        except OSError as e:
            raise InputError(f"{path}: not a readable JetNet-layout HDF5 file ({e})") from None
        self._data = self._file[HDF5_DATASET]

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._data[start:stop])  # h5py's chunk cache is bounded (1 MiB)

    def close(self) -> None:
        self._file.close()


class _NpyHandle:
    def __init__(self, path: Path):
        self._path = path

    def read(self, start: int, stop: int) -> np.ndarray:
        # A fresh map per chunk, copied out and unmapped: pages of one long-lived map stay resident
        # (and count in RSS) until the kernel needs them, which would make memory follow the input.
        array = _load_npy(self._path)
        try:
            return np.array(array[start:stop])
        finally:
            del array

    def close(self) -> None:
        pass


class _ParquetHandle:
    """Streams record batches in order; a read elsewhere restarts at the row group holding it."""

    def __init__(self, path: Path):
        self._file = _parquet_file(path)
        meta = self._file.metadata
        self._group_starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self._batches, self._buffer, self._next_row = iter(()), [], -1

    def read(self, start: int, stop: int) -> np.ndarray:
        if start != self._next_row:
            self._seek(start, stop - start)
        rows, have = [], 0
        while have < stop - start:
            batch = self._buffer.pop(0) if self._buffer else next(self._batches, None)
            if batch is None:
                break
            take = min(len(batch), stop - start - have)
            rows.append(batch.slice(0, take))
            if take < len(batch):
                self._buffer.insert(0, batch.slice(take))
            have += take
        self._next_row = start + have
        return _particles_array(rows)

    def _seek(self, start: int, batch_size: int) -> None:
        group = int(np.searchsorted(self._group_starts, start, side="right") - 1)
        self._batches = self._file.iter_batches(batch_size=max(batch_size, 1024), columns=[PARQUET_COLUMN],
                                                row_groups=range(group, len(self._group_starts) - 1))
        self._buffer, self._next_row = [], int(self._group_starts[group])
        while self._next_row < start:  # skip to `start` within its row group
            batch = next(self._batches, None)
            if batch is None:
                return  # fewer rows than the metadata said: read() reports the shortfall
            skip = min(len(batch), start - self._next_row)
            if skip < len(batch):
                self._buffer.append(batch.slice(skip))
            self._next_row += skip

    def close(self) -> None:
        self._file.close()


def _particles_array(batches: list) -> np.ndarray:
    """list<list<float>> jets -> float (n, P_max, 4): ragged jets padded with mask-0 particles."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not batches:
        return np.zeros((0, 1, 4), np.float32)
    jets = pa.concat_arrays([b.column(0) for b in batches])
    if jets.null_count:
        raise InputError(f"jets[{_first_null(jets)}]: null instead of a list of particles")
    lengths = pc.list_value_length(jets).to_numpy(zero_copy_only=False).astype(np.int64)
    particles = pc.list_flatten(jets)
    widths = pc.fill_null(pc.list_value_length(particles), 0).to_numpy(zero_copy_only=False)
    width = int(widths[0]) if len(widths) else 3
    bad = np.flatnonzero(widths != width)
    if width not in (3, 4) or len(bad):
        raise InputError(f"jets[{_jet_of(int(bad[0]) if len(bad) else 0, lengths)}]: a particle is "
                         "[etarel, phirel, ptrel] or [etarel, phirel, ptrel, mask], one width per row group")
    values = pc.list_flatten(particles)
    if values.null_count:
        raise InputError(f"jets[{_jet_of(_first_null(values) // width, lengths)}]: null particle feature")
    features = values.to_numpy(zero_copy_only=False).reshape(-1, width)
    return _pad(features, lengths, width)


def _pad(features: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    n, longest = len(lengths), int(lengths.max(initial=1))
    out = np.zeros((n, max(longest, 1), 4), np.result_type(features.dtype, np.float32))
    jet = np.repeat(np.arange(n), lengths)
    position = np.arange(len(jet)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[jet, position, :width] = features
    if width == 3:
        out[jet, position, 3] = 1.0  # the particles that exist; the padding keeps mask 0
    return out


def _first_null(array) -> int:
    return int(np.argmax(array.is_null().to_numpy(zero_copy_only=False)))


def _jet_of(particle: int, lengths: np.ndarray) -> int:
    """The jet (row in the chunk) that holds the flattened particle number `particle`."""
    return int(np.searchsorted(np.cumsum(lengths), particle, side="right"))


_HANDLES = {"hdf5": _Hdf5Handle, "npy": _NpyHandle, "parquet": _ParquetHandle}
