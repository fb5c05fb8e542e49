"""Serving's preprocessing: equal to training's representation, order-invariant, strict on input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.preprocess import InputError, canonical_particles, jets_to_particles
from training.data import particle_tensor, read_jetnet


def test_equals_training_tensor_on_jetnet_arrays(sim_dir):
    particles, _ = read_jetnet(sim_dir)
    np.testing.assert_array_equal(canonical_particles(particles, 30), particles[..., :3])
    np.testing.assert_array_equal(particle_tensor(particles), particles[..., :3])


def test_training_and_serving_break_exact_ptrel_ties_alike(sim_dir):
    """Two particles with the same float32 ptrel (about 1 jet in 50 000 in simulated files): the
    training tensor and a client's JSON jet, in either order, give the same tensor."""
    particles, _ = read_jetnet(sim_dir, jet_type="q")
    jet = particles[:1].copy()
    jet[0, 4, 2] = jet[0, 5, 2]  # a tie, in an order that the tie-break (etarel) reverses
    if jet[0, 4, 0] < jet[0, 5, 0]:
        jet[0, [4, 5], :2] = jet[0, [5, 4], :2]
    json_jet = [p[:3].tolist() for p in jet[0] if p[3] == 1]
    swapped = [json_jet[i] for i in (*range(4), 5, 4, *range(6, len(json_jet)))]
    expected = particle_tensor(jet)
    assert not np.array_equal(expected, jet[..., :3])  # the file's order is not the canonical one
    np.testing.assert_array_equal(jets_to_particles([json_jet], 30), expected)
    np.testing.assert_array_equal(jets_to_particles([swapped], 30), expected)


def test_ragged_shuffled_json_jets_give_the_training_tensor(sim_dir):
    particles, _ = read_jetnet(sim_dir, jet_type="t")
    rng = np.random.default_rng(0)
    jets = []
    for i, jet in enumerate(particles[:100]):
        real = jet[jet[:, 3] == 1]
        rows = real[rng.permutation(len(real))]
        # alternate: 3 features; 4 with the mask; 4 with extra padding rows that must be dropped
        if i % 3 == 0:
            rows = rows[:, :3]
        elif i % 3 == 2:
            rows = np.concatenate([rows, np.zeros((5, 4), np.float32)])
        jets.append(rows.tolist())
    np.testing.assert_array_equal(jets_to_particles(jets, 30), particles[:100, :, :3])


def test_keeps_the_30_highest_ptrel_and_pads():
    rng = np.random.default_rng(1)
    jet = np.c_[rng.normal(0, 0.2, (45, 2)), rng.random(45)]
    out = jets_to_particles([jet.tolist(), [[0.1, 0.2, 0.3]]], 30)
    top = jet[np.argsort(-jet[:, 2])[:30]]
    np.testing.assert_allclose(out[0], top, rtol=1e-6)
    assert out.shape == (2, 30, 3) and np.all(out[1, 1:] == 0)
    np.testing.assert_allclose(out[1, 0], [0.1, 0.2, 0.3], rtol=1e-6)


finite = st.floats(-1.0, 1.0, allow_nan=False, width=32)
particle = st.tuples(finite, finite, st.floats(0.0, 1.0, width=32)).map(list)
jet = st.lists(particle, min_size=1, max_size=45).filter(lambda j: any(p[2] > 0 for p in j))


@settings(max_examples=150, deadline=None)
@given(jet=jet, seed=st.integers(0, 2**32 - 1))
def test_result_does_not_depend_on_particle_order(jet, seed):
    shuffled = [jet[i] for i in np.random.default_rng(seed).permutation(len(jet))]
    np.testing.assert_array_equal(jets_to_particles([jet], 30), jets_to_particles([shuffled], 30))


BAD = [
    ([], "jets: expected a non-empty list"),
    ([[]], r"jets\[0\]: expected a non-empty list of particles"),
    ([[[0.1, 0.2]]], r"jets\[0\]\[0\]: a particle is"),
    ([[[0.1, 0.2, 0.3, 1.0, 5.0]]], r"jets\[0\]\[0\]: a particle is"),
    ([[[0.1, "x", 0.3]]], r"jets\[0\]\[0\]\[1\] \(phirel\): expected a number"),
    ([[[0.1, None, 0.3]]], r"jets\[0\]\[0\]\[1\] \(phirel\): expected a number"),
    ([[[True, False, True]]], r"jets\[0\]\[0\]\[0\] \(etarel\): expected a number"),
    ([[[0.1, 0.2, 0.3]], [[float("nan"), 0.2, 0.3]]], r"jets\[1\]\[0\]\[0\] \(etarel\): NaN"),
    ([[[0.1, float("inf"), 0.3]]], r"jets\[0\]\[0\]\[1\] \(phirel\): NaN and infinity"),
    ([[[1e39, 0.2, 0.3]]], r"jets\[0\]\[0\]\[0\] \(etarel\): value does not fit in float32"),
    ([[[10**400, 0.2, 0.3]]], "does not fit"),
    ([[[0.1, 0.2, -0.3]]], r"jets\[0\]\[0\]\[2\] \(ptrel\): ptrel must be >= 0"),
    ([[[0.1, 0.2, 0.3, 0.5]]], r"jets\[0\]\[0\]\[3\] \(mask\): mask must be 0 or 1"),
    ([[[0.1, 0.2, 0.0], [0.0, 0.0, 0.0]]], r"jets\[0\]: a jet needs at least one particle with ptrel > 0"),
    ([[[0.1, 0.2, 0.3, 0.0]]], r"jets\[0\]: a jet needs at least one particle"),
    ([[0.1, 0.2, 0.3]], r"jets\[0\]: expected a non-empty list of particles|jets\[0\]\[0\]: a particle is"),
]


@pytest.mark.parametrize("jets,message", BAD)
def test_bad_input_names_the_field(jets, message):
    with pytest.raises(InputError, match=message):
        jets_to_particles(jets, 30)


def test_array_shape_errors():
    with pytest.raises(InputError, match=r"expected shape \[N, P, 3\]"):
        canonical_particles(np.zeros((2, 30, 5)), 30)
    with pytest.raises(InputError, match="real numbers"):
        canonical_particles(np.array([[["a", "b", "c"]]]), 30)


def test_subnormals_become_zero():
    out = jets_to_particles([[[1e-45, -1e-40, 0.5]]], 30)
    assert out[0, 0, 0] == 0 and out[0, 0, 1] == 0 and out[0, 0, 2] == np.float32(0.5)
