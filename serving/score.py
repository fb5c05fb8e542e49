"""Batch scoring: `python -m serving.score INPUT --model NAME --output preds.csv [--url URL]`.

INPUT is a JetNet-layout directory ({g,q,t,w,z}.hdf5: the truth is known, so accuracy and the
confusion matrix are printed) or one JetNet-layout .hdf5 file. Jets are read in chunks (bounded
memory) and scored in-process with ONNX Runtime, from `models/<NAME>` or else the BentoML model
store, or by a running server with --url. The CSV has one row per jet:
index, file, row, p_g, p_q, p_t, p_w, p_z, label[, truth]; it is written atomically.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np
from tqdm import tqdm

from .artifacts import CARD_FILE, ArtifactError, atomic_path
from .preprocess import InputError

JETNET_CLASSES = ("g", "q", "t", "w", "z")


def input_files(path: Path) -> list[tuple[Path, int | None]]:
    """(file, truth class index or None) for a JetNet directory or a single .hdf5 file."""
    if path.is_dir():
        files = [(path / f"{c}.hdf5", i) for i, c in enumerate(JETNET_CLASSES) if (path / f"{c}.hdf5").is_file()]
        if not files:
            raise InputError(f"{path}: no JetNet files ({', '.join(c + '.hdf5' for c in JETNET_CLASSES)}) found")
        return files
    if path.is_file():
        return [(path, None)]
    raise InputError(f"{path}: no such file or directory")


def read_chunks(path: Path, chunk: int) -> Iterator[np.ndarray]:
    """particle_features of a JetNet-layout file, `chunk` jets at a time."""
    try:
        with h5py.File(path, "r") as f:
            data = f["particle_features"]
            if data.ndim != 3 or data.shape[2] not in (3, 4):
                raise InputError(f"{path}: particle_features has shape {data.shape}, expected (N, P, 3 or 4)")
            for start in range(0, data.shape[0], chunk):
                yield np.asarray(data[start:start + chunk])
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a readable JetNet-layout HDF5 file ({e})") from e


def local_scorer(name: str, models_dir: Path) -> tuple[Callable[[np.ndarray], np.ndarray], list[str]]:
    from .runtime import OnnxModel

    model_dir = models_dir / name
    if not (model_dir / CARD_FILE).is_file():
        model_dir = _store_path(name)
    model = OnnxModel.load(model_dir)
    print(f"scoring with {name}:{model.card.version} on {model.provider}", file=sys.stderr)
    return model.predict_raw, model.card.classes


def _store_path(name: str) -> Path:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(f"{name}:latest").path)
    except NotFound:
        raise ArtifactError(f"model {name!r} is neither in models/ nor in the BentoML model store") from None


def remote_scorer(name: str, url: str, timeout: float = 120.0) -> tuple[Callable[[np.ndarray], np.ndarray], list[str]]:
    import httpx

    client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
    classes: list[str] = []

    def score(particles: np.ndarray) -> np.ndarray:
        response = client.post("/classify", json={"model": name, "jets": particles.tolist()})
        if response.status_code != 200:
            raise InputError(f"{url}/classify answered {response.status_code}: {response.text[:500]}")
        body = response.json()
        classes[:] = body["classes"]
        return np.asarray(body["probabilities"], np.float32)

    return score, classes


def score(input_path: Path, output: Path, scorer: Callable[[np.ndarray], np.ndarray], classes: list[str],
          chunk: int = 4096, progress: bool = True) -> dict:
    files = input_files(input_path)
    total = sum(_n_jets(f) for f, _ in files)
    truth_known = all(t is not None for _, t in files)
    confusion = np.zeros((len(JETNET_CLASSES),) * 2, np.int64)
    index = 0
    with atomic_path(output) as tmp, open(tmp, "w", newline="") as out, \
            tqdm(total=total, unit="jet", desc="scoring", disable=not progress, file=sys.stderr) as bar:
        writer = csv.writer(out)
        header = None
        for path, truth in files:
            row = 0
            for particles in read_chunks(path, chunk):
                probs = scorer(particles)
                header = header or _write_header(writer, classes, truth_known)
                labels = probs.argmax(axis=1)
                for p, label in zip(probs, labels):
                    writer.writerow([index, path.name, row, *(f"{v:.6g}" for v in p), classes[label],
                                     *([JETNET_CLASSES[truth]] if truth_known else [])])
                    index, row = index + 1, row + 1
                if truth_known:
                    np.add.at(confusion, (truth, labels), 1)
                bar.update(len(particles))
        if header is None:
            _write_header(writer, classes or list(JETNET_CLASSES), truth_known)
    result = {"jets": index, "output": str(output)}
    if truth_known and index:
        result.update(accuracy=float(np.trace(confusion) / index), confusion=confusion.tolist())
    return result


def _n_jets(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f["particle_features"].shape[0])
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a readable JetNet-layout HDF5 file ({e})") from e


def _write_header(writer, classes: list[str], truth_known: bool) -> bool:
    writer.writerow(["index", "file", "row", *(f"p_{c}" for c in classes), "label",
                     *(["truth"] if truth_known else [])])
    return True


def format_confusion(confusion: list[list[int]]) -> str:
    lines = ["truth \\ predicted " + " ".join(f"{c:>6}" for c in JETNET_CLASSES)]
    for c, row in zip(JETNET_CLASSES, confusion):
        lines.append(f"{c:>17} " + " ".join(f"{v:>6}" for v in row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="JetNet-layout directory or .hdf5 file")
    parser.add_argument("--model", default="fcnn_tensor")
    parser.add_argument("--output", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--url", help="score through a running server, e.g. http://localhost:3000")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--chunk", type=int, default=4096, help="jets per read and per request (<= 10000)")
    args = parser.parse_args(argv)
    try:
        if args.url:
            scorer, classes = remote_scorer(args.model, args.url)
        else:
            scorer, classes = local_scorer(args.model, args.models_dir)
        result = score(args.input, args.output, scorer, classes, args.chunk)
    except (InputError, ArtifactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {result['jets']} rows to {result['output']}")
    if "accuracy" in result:
        print(f"accuracy: {result['accuracy']:.4f}\n{format_confusion(result['confusion'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
