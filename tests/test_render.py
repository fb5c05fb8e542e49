"""Jet images: the in-graph renderer (as exported to ONNX) equals jetnet.utils.to_image exactly."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from serving.preprocess import canonical_particles
from serving.runtime import make_session
from training.data import read_jetnet
from training.export import to_onnx
from training.render import JetImage, jetnet_images


def _onnx_renderer(tmp_path, maxR):
    particles = keras.Input((30, 3), name="particles")
    to_onnx(keras.Model(particles, JetImage(50, maxR)(particles)), tmp_path / f"render-{maxR}.onnx")
    session = make_session(tmp_path / f"render-{maxR}.onnx", device="cpu")
    return lambda x: session.run(None, {"particles": x})[0]


@pytest.mark.parametrize("maxR", [0.4, 0.1])
def test_serving_render_equals_jetnet_on_simulated_jets(sim_dir, tmp_path, maxR):
    particles, _ = read_jetnet(sim_dir)
    expected = jetnet_images(particles, maxR=maxR)  # training: jetnet.utils.to_image with the mask
    render = _onnx_renderer(tmp_path, maxR)
    got = render(canonical_particles(particles, 30))  # serving: its preprocessing, then the graph
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.count_nonzero(expected) > 10 * len(particles)


@pytest.mark.parametrize("maxR", [0.4, 0.1, 0.7, 1.0])
def test_bin_edges_match_numpy(tmp_path, maxR):
    """Values on and next to every bin edge, in float32 and float64, land where numpy puts them."""
    edges = np.linspace(-maxR, maxR, 51)
    near = [edges, np.nextafter(edges, 1), np.nextafter(edges, -1)]
    as32 = edges.astype(np.float32)
    near += [as32, np.nextafter(as32, np.float32(1)), np.nextafter(as32, np.float32(-1))]
    values = np.concatenate(near).astype(np.float32)
    values[np.abs(values) < np.finfo(np.float32).tiny] = 0  # serving flushes subnormals
    rng = np.random.default_rng(0)
    x = np.zeros((300, 30, 3), np.float32)
    x[..., 0], x[..., 1] = rng.choice(values, (300, 30)), rng.choice(values, (300, 30))
    x[..., 2] = rng.random((300, 30), dtype=np.float32)
    expected = jetnet_images(x, maxR=maxR)
    np.testing.assert_allclose(_onnx_renderer(tmp_path, maxR)(x), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(JetImage(50, maxR)(x)), expected, rtol=0, atol=1e-6)


def test_jetnet_images_leaves_input_alone(sim_dir):
    particles, _ = read_jetnet(sim_dir, jet_type="g")
    before = particles.copy()
    jetnet_images(particles[:50])
    assert np.array_equal(particles, before)  # to_image multiplies pt by the mask in place
