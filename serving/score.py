"""Batch scoring: `python -m serving.score INPUT --model NAME --output preds.csv|preds.parquet`.

INPUT is a JetNet-layout directory ({g,q,t,w,z}.hdf5, or .npy / .parquet: the file name is the
truth, so accuracy and the confusion matrix are printed) or one .hdf5, .npy or .parquet file
(formats: serving/scoring_io.py). Jets are read and scored in chunks (memory follows --chunk, not
the input), by one of:
  (default)             ONNX Runtime in this process, from `models/<NAME>` or the BentoML store;
  --url URL             a running server's POST /classify, over --connections parallel connections;
  --scheduler ADDRESS   a Dask cluster (`local` starts a LocalCluster of --workers processes).
The output has one row per jet: index, file, row, p_g, p_q, p_t, p_w, p_z, label[, truth]; CSV or
Parquet by its suffix, written atomically. Finished chunks are kept in `<output>.partial/` until
the output is written: after an interruption, the same command with --resume continues where it
stopped, and gives the same output as an uninterrupted run. Exit status: 0 done, 1 the server or
cluster failed, 2 bad input, model or arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .artifacts import ArtifactError
from .preprocess import InputError
from .scoring_io import JETNET_CLASSES, ScoringError, find_sources, plan_chunks
from .scoring_output import ResultStore, fingerprint, output_format, write_output


def score(input_path: Path, output: Path, scorer, chunk: int = 4096, resume: bool = False,
          progress: bool = True) -> dict:
    """Score every jet of `input_path` with `scorer` (see serving.scoring_local) into `output`."""
    output_format(output)  # a bad suffix fails before any work
    sources = find_sources(input_path)
    plan = plan_chunks(sources, chunk)
    total = sum(s.n_jets for s in sources)
    store = ResultStore(output, fingerprint(sources, chunk, scorer.identity, scorer.classes),
                        len(scorer.classes), resume)
    if store.chunks_done:
        print(f"resuming: {store.jets_done} of {total} jets already scored", file=sys.stderr)
    try:
        _score_chunks(plan[store.chunks_done:], scorer, store, total, progress)
    except BaseException:
        if not store.jets_done:
            store.remove()  # nothing worth keeping
        else:
            store.close()
            print(f"{store.jets_done} of {total} jets are kept in {store.dir}; "
                  "rerun with --resume to continue", file=sys.stderr)
        raise
    truth_known = all(s.truth is not None for s in sources)
    with _bar(total, "writing", progress) as bar:
        confusion = write_output(output, plan, store, scorer.classes, truth_known, bar.update)
    store.remove()
    result = {"jets": total, "output": str(output)}
    if truth_known and total:
        result.update(accuracy=float(np.trace(confusion) / total), confusion=confusion.tolist())
    return result


def _score_chunks(todo: list, scorer, store: ResultStore, total: int, progress: bool) -> None:
    n_classes = len(scorer.classes)
    with _bar(total, "scoring", progress, initial=store.jets_done) as bar:
        for chunk, probs in zip(todo, scorer.map(todo), strict=True):
            if probs.shape != (len(chunk), n_classes):  # never store what does not fit the rows
                raise ScoringError(f"{chunk.where()}: the scorer returned shape {probs.shape}")
            store.append(probs)
            bar.update(len(chunk))


def _bar(total: int, desc: str, progress: bool, initial: int = 0) -> tqdm:
    return tqdm(total=total, initial=initial, unit="jet", unit_scale=True, desc=desc,
                disable=not progress, file=sys.stderr, smoothing=0.1)


def format_confusion(confusion: list[list[int]]) -> str:
    lines = ["truth \\ predicted " + " ".join(f"{c:>6}" for c in JETNET_CLASSES)]
    for c, row in zip(JETNET_CLASSES, confusion):
        lines.append(f"{c:>17} " + " ".join(f"{v:>6}" for v in row))
    return "\n".join(lines)


def make_scorer(args: argparse.Namespace):
    if args.url:
        from .scoring_remote import RemoteScorer

        return RemoteScorer(args.model, args.url, connections=args.connections)
    if args.scheduler:
        from .scoring_dask import DaskScorer

        return DaskScorer(args.model, args.models_dir, args.scheduler, args.workers)
    from .scoring_local import LocalScorer

    return LocalScorer(args.model, args.models_dir)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="JetNet-layout directory, or one .hdf5, .npy or .parquet file")
    parser.add_argument("--model", default="fcnn_tensor")
    parser.add_argument("--output", type=Path, required=True, help="file to write: .csv or .parquet")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--chunk", type=_positive, default=4096,
                        help="jets per read, per task and per request (requests are cut to <= 10000)")
    parser.add_argument("--resume", action="store_true", help="continue from <output>.partial/ if there is one")
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument("--url", help="score through a running server, e.g. http://localhost:3000")
    backend.add_argument("--scheduler", help="Dask scheduler address, or `local` for a LocalCluster")
    parser.add_argument("--connections", type=_positive, default=4, help="parallel HTTP connections (--url)")
    parser.add_argument("--workers", type=_positive, help="LocalCluster worker processes (--scheduler local)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scorer = None
    try:
        output_format(args.output)  # a bad suffix fails before a model or cluster is loaded
        scorer = make_scorer(args)
        result = score(args.input, args.output, scorer, args.chunk, args.resume, not args.no_progress)
    except (InputError, ArtifactError) as e:
        return _fail(2, e)
    except ScoringError as e:
        return _fail(1, e)
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    finally:
        if scorer is not None:
            scorer.close()
    print(f"wrote {result['jets']} rows to {result['output']}")
    if "accuracy" in result:
        print(f"accuracy: {result['accuracy']:.4f}\n{format_confusion(result['confusion'])}")
    return 0


def _fail(status: int, error) -> int:
    print(f"error: {error}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
