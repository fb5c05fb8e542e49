"""Export: Keras <-> ONNX Runtime parity for every model, and the artifacts' contract."""

from __future__ import annotations

import json

import bentoml
import keras
import numpy as np
import pytest

from serving.artifacts import sha256_file, verified_model
from serving.runtime import make_session
from training.data import read_jetnet
from training.export import serving_graph, to_onnx
from training.models import MODELS, build_model
from training.render import jetnet_images


def _randomise_batchnorm(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial moving statistics, so inference-mode BatchNormalization really is exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, var.shape)])


@pytest.mark.parametrize("name", list(MODELS))
def test_keras_onnx_parity(name, sim_dir, tmp_path):
    keras.utils.set_random_seed(1)
    model = build_model(name)
    _randomise_batchnorm(model)
    graph = serving_graph(model, MODELS[name].representation, im_size=50, maxR=0.4)
    to_onnx(graph, tmp_path / "model.onnx")
    session = make_session(tmp_path / "model.onnx", device="cpu")
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(inputs) == ["particles"] and inputs["particles"][1:] == [30, 3]
    assert list(outputs) == ["probabilities"] and outputs["probabilities"][1] == 5
    particles, _ = read_jetnet(sim_dir)
    for n in (1, 257):
        x = particles[:n, :, :3]
        onnx_probs = session.run(None, {"particles": x})[0]
        np.testing.assert_allclose(onnx_probs, graph.predict(x, verbose=0), atol=1e-4, rtol=0)
        assert onnx_probs.shape == (n, 5)
        if MODELS[name].representation == "image":  # the graph's rendering = jetnet's images
            reference = model.predict(jetnet_images(particles[:n]), verbose=0)
            np.testing.assert_allclose(onnx_probs, reference, atol=1e-4, rtol=0)


def test_exported_artifacts(tiny_models):
    for name in MODELS:
        card, onnx_path = verified_model(tiny_models / name)
        assert card.name == name and card.classes == ["g", "q", "t", "w", "z"]
        assert card.sha256 == sha256_file(onnx_path) and card.version == card.sha256[:16]
        assert card.input.name == "particles" and card.input.shape == [None, 30, 3]
        assert card.preprocessing.representation == MODELS[name].representation
        if card.preprocessing.representation == "image":
            assert (card.preprocessing.image.im_size, card.preprocessing.image.maxR) == (50, 0.4)
        assert set(card.metrics) == {"valid", "test"} and 0 <= card.metrics["test"].accuracy <= 1
        assert card.training["profile"] == "tiny" and card.training["epochs_run"] >= 1
        assert card.data["source"] == "simulated" and card.data["split"]["test"] == 250
        stored = bentoml.models.get(f"{name}:latest")
        assert stored.tag.version == card.version
        assert json.loads((tiny_models / name / "card.json").read_text())["sha256"] == card.sha256
    assert not [p for p in tiny_models.iterdir() if p.name.startswith(".")]  # no staging leftovers
