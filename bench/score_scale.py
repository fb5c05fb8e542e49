"""Batch scoring at scale: jets/s and peak memory of `python -m serving.score`, small vs large input.

    .venv/bin/python bench/score_scale.py            # 500 000 and 50 000 jets; HDF5, .npy, Parquet

Builds JetNet-layout inputs in data/bench/ (git-ignored; reused when present) by tiling the
simulated jets of data/simulated/<profile>-seed42 (the same jets repeated: fine for speed and
memory, meaningless for accuracy), then scores each input in a subprocess and reports wall time,
jets/s and the subprocess's peak RSS (from wait4's rusage). Memory that does not grow with the
input shows as a large/small peak-RSS ratio near 1 for the same format.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = "gqtwz"
SOURCES = (ROOT / "data/simulated/quick-seed42", ROOT / "data/simulated/paper-seed42")


def main() -> int:
    args = _parser().parse_args()
    source = args.source or next((s for s in SOURCES if (s / "z.hdf5").is_file()), None)
    if source is None or not (args.models_dir / args.model / "card.json").is_file():
        sys.exit(f"needs simulated jets ({' or '.join(map(str, SOURCES))}) and {args.models_dir / args.model}: "
                 "run `make models` first")
    jets = _load(source)
    print(f"source: {source} ({sum(len(x) for x in jets.values())} distinct jets, tiled: inputs repeat them)")
    rows = []
    for n in (args.small, args.jets):
        for fmt in args.formats.split(","):
            path = _build(args.data / f"{n}" / fmt, fmt, jets, n // len(CLASSES))
            rows.append((fmt, n, *_measure(args, path, args.data / "out" / f"preds-{fmt}-{n}.csv")))
    _report(rows, args)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jets", type=int, default=500_000, help="the large input")
    parser.add_argument("--small", type=int, default=50_000, help="the small input, for the memory ratio")
    parser.add_argument("--formats", default="hdf5,npy,parquet")
    parser.add_argument("--source", type=Path, help="JetNet-layout directory to tile (default: simulated jets)")
    parser.add_argument("--data", type=Path, default=ROOT / "data/bench")
    parser.add_argument("--model", default="fcnn_tensor")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--chunk", type=int, default=4096)
    return parser


def _load(source: Path) -> dict[str, np.ndarray]:
    out = {}
    for c in CLASSES:
        with h5py.File(source / f"{c}.hdf5", "r") as f:
            out[c] = f["particle_features"][:]
    return out


def _build(directory: Path, fmt: str, jets: dict[str, np.ndarray], per_class: int) -> Path:
    """{g,q,t,w,z}.<fmt> with `per_class` jets each, the source jets repeated; kept for the next run."""
    done = directory / ".complete"
    if done.is_file() and done.read_text() == str(per_class):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for c, x in jets.items():
        tiled = np.resize(x, (per_class, *x.shape[1:]))  # repeats the jets cyclically
        {"hdf5": _write_hdf5, "npy": _write_npy, "parquet": _write_parquet}[fmt](directory / c, tiled)
    done.write_text(str(per_class))
    print(f"built {directory} ({per_class * len(jets)} jets) in {time.perf_counter() - start:.1f} s")
    return directory


def _write_hdf5(stem: Path, x: np.ndarray) -> None:
    with h5py.File(stem.with_suffix(".hdf5"), "w") as f:
        f.create_dataset("particle_features", data=x, chunks=(min(1024, len(x)), *x.shape[1:]))


def _write_npy(stem: Path, x: np.ndarray) -> None:
    np.save(stem.with_suffix(".npy"), x)


def _write_parquet(stem: Path, x: np.ndarray) -> None:
    """Ragged jets, real particles only, [etarel, phirel, ptrel]; row groups of 50 000 jets."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    real = x[..., 3] > 0
    values = pa.array(x[real][:, :3].ravel())
    particles = pa.ListArray.from_arrays(pa.array(np.arange(0, len(values) + 1, 3, dtype=np.int32)), values)
    offsets = np.concatenate([[0], np.cumsum(real.sum(axis=1))]).astype(np.int32)
    table = pa.table({"particles": pa.ListArray.from_arrays(pa.array(offsets), particles)})
    pq.write_table(table, stem.with_suffix(".parquet"), row_group_size=50_000)


def _measure(args, path: Path, output: Path) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one scoring subprocess, from start to exit."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "serving.score", str(path), "--model", args.model,
               "--models-dir", str(args.models_dir), "--output", str(output), "--chunk", str(args.chunk),
               "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS alone
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024  # kilobytes on Linux


def _report(rows: list[tuple[str, int, float, int]], args) -> None:
    peak = {(fmt, n): rss for fmt, n, _, rss in rows}
    print(f"\n{'format':8} {'jets':>8} {'seconds':>8} {'jets/s':>8} {'peak RSS':>9} {'RSS vs ' + str(args.small):>14}")
    for fmt, n, seconds, rss in rows:
        ratio = rss / peak[(fmt, args.small)]
        print(f"{fmt:8} {n:>8} {seconds:>8.1f} {n / seconds:>8.0f} {rss / 2**20:>7.0f} MiB {ratio:>13.2f}x")
    print(f"(whole command: start-up, model load, reading, scoring and the CSV; chunk {args.chunk}; "
          f"model {args.model}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    sys.exit(main())
