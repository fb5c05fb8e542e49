"""Simulate JetNet-format jets offline: `python -m training.simulate --out DIR --jets-per-class N`.

Writes `{g,q,t,w,z}.hdf5` with JetNet's datasets `particle_features` (N, 30, 4) and `jet_features`
(N, 4), so the one JetNet reader serves real and simulated data alike. Work is cut into chunks of
at most `CHUNK_JETS` jets, each with its own seed derived from (seed, class, chunk): the output for
a given seed is the same whatever the number of workers, and a larger N extends a smaller one.
Finished chunks are cached in DIR/.chunks so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from serving.artifacts import atomic_path

from .constants import CLASSES, FILE_JET_FEATURES, PARTICLE_FEATURES
from .physics import PROCESSES, PT_HAT, JetGenerator, Jets, JetSelection

CHUNK_JETS = 250


@dataclass(frozen=True)
class Chunk:
    jet_type: str
    index: int
    n_jets: int
    seed: int

    @property
    def cache_name(self) -> str:
        return f"{self.jet_type}-{self.index:05d}-{self.n_jets}-{self.seed}.npz"


def plan_chunks(jets_per_class: int, seed: int, jet_types=CLASSES) -> list[Chunk]:
    chunks = []
    for jet_type in jet_types:
        class_index = CLASSES.index(jet_type)
        for index, start in enumerate(range(0, jets_per_class, CHUNK_JETS)):
            n = min(CHUNK_JETS, jets_per_class - start)
            # Pythia accepts seeds in [1, 900_000_000]; SeedSequence keeps chunk streams independent.
            state = np.random.SeedSequence([seed, class_index, index]).generate_state(1)[0]
            chunks.append(Chunk(jet_type, index, n, int(state % 900_000_000) + 1))
    return chunks


def run_chunk(chunk: Chunk, cache_dir: Path | None = None) -> tuple[Chunk, Jets, int]:
    cached = cache_dir / chunk.cache_name if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as f:
            return chunk, Jets(f["particle_features"], f["jet_features"]), int(f["events"])
    generator = JetGenerator(chunk.jet_type, chunk.seed)
    jets = generator.generate(chunk.n_jets)
    if cached is not None:
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to the name
                np.savez(f, particle_features=jets.particle_features,
                         jet_features=jets.jet_features, events=generator.events_generated)
    return chunk, jets, generator.events_generated


def _run_chunk_star(args):
    return run_chunk(*args)


def simulate(out: Path, jets_per_class: int, seed: int = 0, workers: int = 1,
             jet_types=CLASSES, progress: bool = True) -> dict:
    """Simulate `jets_per_class` jets of each type into `out`; returns the run's metadata."""
    out = Path(out)
    cache = out / ".chunks"
    cache.mkdir(parents=True, exist_ok=True)
    chunks = plan_chunks(jets_per_class, seed, jet_types)
    results: dict[tuple[str, int], tuple[Jets, int]] = {}
    start = time.time()
    bar = tqdm(total=len(chunks) and jets_per_class * len(jet_types), unit="jet",
               desc="simulating jets", disable=not progress)
    tasks = [(c, cache) for c in chunks]
    if workers > 1:
        # spawn: Pythia and FastJet hold C++ state that must not be shared through fork
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for chunk, jets, events in pool.imap_unordered(_run_chunk_star, tasks):
                results[(chunk.jet_type, chunk.index)] = (jets, events)
                bar.update(chunk.n_jets)
    else:
        for task in tasks:
            chunk, jets, events = run_chunk(*task)
            results[(chunk.jet_type, chunk.index)] = (jets, events)
            bar.update(chunk.n_jets)
    bar.close()
    seconds = time.time() - start
    meta = _metadata(jets_per_class, seed, workers, seconds)
    for jet_type in jet_types:
        parts = [results[(c.jet_type, c.index)] for c in chunks if c.jet_type == jet_type]
        jets = Jets.concatenate([p[0] for p in parts])
        meta["events"][jet_type] = int(sum(p[1] for p in parts))
        write_jetnet_file(out / f"{jet_type}.hdf5", jets,
                          {**meta, "jet_type": jet_type, "processes": PROCESSES[jet_type]})
    with atomic_path(out / "simulation.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return meta


def write_jetnet_file(path: Path, jets: Jets, attrs: dict) -> None:
    """Write one class's jets in JetNet's HDF5 layout, atomically."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("particle_features", data=jets.particle_features.astype(np.float32))
            f.create_dataset("jet_features", data=jets.jet_features.astype(np.float32))
            f.attrs["particle_features"] = list(PARTICLE_FEATURES)
            f.attrs["jet_features"] = list(FILE_JET_FEATURES)
            f.attrs["source"] = "simulated"
            f.attrs["metadata"] = json.dumps(attrs)


def _metadata(jets_per_class: int, seed: int, workers: int, seconds: float) -> dict:
    from importlib.metadata import version

    selection = JetSelection()  # the generator's defaults
    return {
        "source": "simulated",
        "generator": f"pythia8mc {version('pythia8mc')}, fastjet {version('fastjet')}",
        "process": "pp at 13 TeV, anti-kT R=0.8 on visible final-state particles",
        "pt_hat_gev": list(PT_HAT),
        "jet_selection": selection.__dict__,
        "jets_per_class": jets_per_class,
        "seed": seed,
        "workers": workers,
        "seconds": round(seconds, 1),
        "host": platform.node(),
        "events": {},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--jets-per-class", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=max(1, multiprocessing.cpu_count()))
    parser.add_argument("--jet-types", default=",".join(CLASSES),
                        help="comma-separated subset of g,q,t,w,z")
    args = parser.parse_args(argv)
    jet_types = tuple(t for t in CLASSES if t in args.jet_types.split(","))
    if args.jets_per_class < 1:
        parser.error("--jets-per-class must be at least 1")
    meta = simulate(args.out, args.jets_per_class, args.seed, args.workers, jet_types)
    print(f"wrote {len(jet_types)} x {args.jets_per_class} jets to {args.out} in {meta['seconds']} s")


if __name__ == "__main__":
    main()
