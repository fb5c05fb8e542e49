"""Simulated jets: JetNet's exact layout, physically sane, reproducible, resumable."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from training.constants import CLASSES, N_PARTICLES
from training.physics import JetGenerator
from training.simulate import plan_chunks, run_chunk


def _load(sim_dir, jet_type):
    with h5py.File(sim_dir / f"{jet_type}.hdf5", "r") as f:
        return np.asarray(f["particle_features"]), np.asarray(f["jet_features"]), dict(f.attrs)


@pytest.mark.parametrize("jet_type", CLASSES)
def test_jetnet_layout(sim_dir, jet_type):
    pf, jf, attrs = _load(sim_dir, jet_type)
    assert pf.shape == (400, N_PARTICLES, 4) and pf.dtype == np.float32
    assert jf.shape == (400, 4) and jf.dtype == np.float32
    mask = pf[..., 3]
    assert set(np.unique(mask)) <= {0.0, 1.0}
    # real particles first, then zero padding (all features exactly 0)
    assert np.all(np.diff(mask, axis=1) <= 0)
    assert np.all(pf[mask == 0] == 0)
    # ordered by decreasing ptrel, each a fraction of the jet's pT
    ptrel = pf[..., 2]
    real = mask == 1
    assert np.all(np.diff(ptrel, axis=1)[mask[:, 1:] == 1] <= 0)
    assert np.all((ptrel[real] > 0) & (ptrel[real] < 1.0))
    # constituents lie within the jet radius. FastJet clusters in rapidity, etarel is in
    # pseudorapidity (as JetNet's), so a rare soft massive hadron can sit at larger |etarel|.
    assert np.all(np.abs(pf[..., 1]) < 1.0)
    assert np.quantile(np.hypot(pf[..., 0], pf[..., 1])[real], 0.99) < 0.8
    # jet features: pt in the window, |eta| < 2.5, num_particles counts the real ones (capped at 30)
    pt, eta, mass, num = jf.T
    assert np.all((pt >= 800) & (pt <= 1200)) and np.all(np.abs(eta) < 2.5) and np.all(mass > 0)
    assert np.array_equal(np.minimum(num, N_PARTICLES), real.sum(axis=1))
    assert json.loads(attrs["metadata"])["jet_type"] == jet_type


def test_jet_masses_match_their_origin(sim_dir):
    """W, Z and top jets peak near their masses; quark and gluon jets are lighter than tops."""
    median = {t: float(np.median(_load(sim_dir, t)[1][:, 2])) for t in CLASSES}
    assert 65 < median["w"] < 115, median
    assert 75 < median["z"] < 125, median
    assert 150 < median["t"] < 215, median
    assert median["z"] > median["w"] - 5
    assert median["q"] < median["t"] - 40 and median["g"] < median["t"] - 20, median
    # gluon jets carry more constituents than light-quark jets
    nums = {t: float(np.median(_load(sim_dir, t)[1][:, 3])) for t in ("g", "q")}
    assert nums["g"] > nums["q"], nums


def test_generator_is_reproducible():
    a = JetGenerator("w", seed=5).generate(20)
    b = JetGenerator("w", seed=5).generate(20)
    c = JetGenerator("w", seed=6).generate(20)
    assert np.array_equal(a.particle_features, b.particle_features)
    assert not np.array_equal(a.particle_features, c.particle_features)


def test_chunk_seeds_are_independent_and_stable():
    chunks = plan_chunks(600, seed=3)
    assert sum(c.n_jets for c in chunks if c.jet_type == "g") == 600
    assert len({c.seed for c in chunks}) == len(chunks)
    # a larger request extends a smaller one: same first chunks, same seeds
    assert plan_chunks(300, seed=3)[0] == chunks[0]


def test_finished_chunks_are_reused(tmp_path):
    chunk = plan_chunks(10, seed=9, jet_types=("z",))[0]
    _, first, events = run_chunk(chunk, tmp_path)
    assert (tmp_path / chunk.cache_name).is_file()
    _, again, events_again = run_chunk(chunk, tmp_path)  # read back, not regenerated
    assert np.array_equal(first.particle_features, again.particle_features) and events == events_again

