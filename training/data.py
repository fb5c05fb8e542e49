"""One reader for JetNet-layout HDF5 files, real (fetched with jetnet) or simulated (training.simulate).

`read_jetnet` returns exactly what `jetnet.datasets.JetNet.getData` returns for the same arguments
(feature order, class index as the first jet feature, seeded shuffle and split), but reads the files
with h5py: jetnet 0.2.5 asks Zenodo for each file's md5 on every call, which fails offline and
rejects simulated files. `download_jetnet` uses jetnet itself, on a connected machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from serving.preprocess import canonical_particles

from .constants import CLASSES, FILE_JET_FEATURES, JET_FEATURES, N_PARTICLES, PARTICLE_FEATURES

SPLITS = ("train", "valid", "test", "all")


def read_jetnet(
    data_dir: str | Path,
    jet_type: str | list[str] = "all",
    particle_features: list[str] | str = "all",
    jet_features: list[str] | str = "all",
    num_particles: int = N_PARTICLES,
    split: str = "all",
    split_fraction: list[float] | None = None,
    seed: int = 42,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """JetNet.getData's arrays from local files `<data_dir>/<jet_type>.hdf5` (no network)."""
    jet_types = list(CLASSES) if jet_type == "all" else _as_list(jet_type)
    unknown = set(jet_types) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown jet type(s) {sorted(unknown)}; expected some of {CLASSES}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if num_particles > N_PARTICLES:
        raise ValueError(f"JetNet-30 files hold {N_PARTICLES} particles per jet, not {num_particles}")
    particle_features = list(PARTICLE_FEATURES) if particle_features == "all" else _as_list(particle_features)
    jet_features = list(JET_FEATURES) if jet_features == "all" else _as_list(jet_features)
    if not particle_features and not jet_features:
        raise ValueError("ask for particle features, jet features or both")

    particles, jets = [], []
    for j in jet_types:
        pf, jf = read_jetnet_file(Path(data_dir) / f"{j}.hdf5")
        if particle_features:
            particles.append(_columns(pf[:, :num_particles], particle_features, PARTICLE_FEATURES))
        # as getData: class index first, then pt, eta, mass, and num_particles capped at num_particles
        jf = np.concatenate(
            (np.full([len(jf), 1], CLASSES.index(j)), jf[:, :3], np.minimum(jf[:, 3:], num_particles)),
            axis=1,
        )
        if jet_features:
            jets.append(_columns(jf, jet_features, JET_FEATURES))
    particles = np.concatenate(particles) if particle_features else None
    jets = np.concatenate(jets) if jet_features else None

    length = len(particles if particles is not None else jets)
    lcut, rcut = _split_cuts(length, split, split_fraction or [0.7, 0.15, 0.15])
    perm = np.random.default_rng(seed).permutation(length)
    pick = perm[lcut:rcut]
    return (
        particles[pick] if particles is not None else None,
        jets[pick] if jets is not None else None,
    )


def read_jetnet_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(particle_features, jet_features) of one JetNet-layout file, with a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: simulate jets with `python -m training.simulate --out {path.parent}` "
            f"or fetch JetNet with `python -m training download --data {path.parent}`"
        )
    try:
        with h5py.File(path, "r") as f:
            pf, jf = np.asarray(f["particle_features"]), np.asarray(f["jet_features"])
    except (OSError, KeyError) as e:
        raise ValueError(f"{path} is not a JetNet-layout HDF5 file: {e}") from e
    if pf.ndim != 3 or pf.shape[2] != len(PARTICLE_FEATURES) or jf.shape != (len(pf), len(FILE_JET_FEATURES)):
        raise ValueError(
            f"{path}: expected particle_features (N, P, 4) and jet_features (N, 4), "
            f"got {pf.shape} and {jf.shape}"
        )
    return pf, jf


def download_jetnet(data_dir: str | Path, jet_types=CLASSES) -> None:
    """Fetch the real JetNet-30 files from Zenodo with jetnet (needs the internet)."""
    from jetnet.datasets import JetNet

    for j in jet_types:
        JetNet.getData(jet_type=j, data_dir=str(data_dir), jet_features=None, download=True)


@dataclass(frozen=True)
class Split:
    particles: np.ndarray  # (N, 30, 4): etarel, phirel, ptrel, mask
    labels: np.ndarray  # (N,) class index into CLASSES

    def __len__(self) -> int:
        return len(self.labels)


def balanced_splits(data_dir: str | Path, sizes: tuple[int, int, int], seed: int = 42) -> dict[str, Split]:
    """Disjoint class-balanced train/valid/test splits of the given sizes, as in the paper."""
    particles, jets = read_jetnet(data_dir, seed=seed)
    labels = jets[:, 0].astype(np.int64)
    per_class = [s // len(CLASSES) for s in sizes]
    picks: dict[str, list[np.ndarray]] = {name: [] for name in ("train", "valid", "test")}
    for c, name in enumerate(CLASSES):
        idx = np.flatnonzero(labels == c)  # already in getData's seeded random order
        if len(idx) < sum(per_class):
            raise ValueError(
                f"{data_dir}: {len(idx)} '{name}' jets, but the splits {sizes} need {sum(per_class)} "
                "per class; simulate more jets or choose smaller splits"
            )
        bounds = np.cumsum([0, *per_class])
        for split, lo, hi in zip(picks, bounds[:-1], bounds[1:]):
            picks[split].append(idx[lo:hi])
    rng = np.random.default_rng(seed)
    out = {}
    for split, parts in picks.items():
        idx = rng.permutation(np.concatenate(parts))
        out[split] = Split(particles[idx].astype(np.float32), labels[idx])
    return out


def _columns(data: np.ndarray, wanted: list[str], order: tuple[str, ...]) -> np.ndarray:
    if list(wanted) == list(order):
        return data
    missing = [w for w in wanted if w not in order]
    if missing:
        raise ValueError(f"features {missing} do not exist (available: {list(order)})")
    return np.concatenate([data[..., order.index(w), np.newaxis] for w in wanted], axis=-1)


def _split_cuts(length: int, split: str, fractions: list[float]) -> tuple[int, int]:
    if split == "all":
        return 0, length
    cuts = (np.cumsum(np.insert(fractions, 0, 0)) * length).astype(int)
    i = SPLITS.index(split)
    return int(cuts[i]), int(cuts[i + 1])


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def particle_tensor(particles: np.ndarray) -> np.ndarray:
    """JetNet particle_features -> the (N, 30, 3) tensor a particle model sees, built by serving's
    own preprocessing: the file's pT order with serving's tie-break (exactly equal ptrel, about 1
    jet in 50 000), so a trained model and the server see the same tensor by construction."""
    return canonical_particles(particles, N_PARTICLES)
