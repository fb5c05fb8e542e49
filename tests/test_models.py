"""Architectures: the output shapes of the paper's Tables 1-3, exactly."""

from __future__ import annotations

import pytest

from training.models import MODELS, build_model


def _shape(model, layer):
    return tuple(model.get_layer(layer).output.shape[1:])


def test_registry():
    assert list(MODELS) == ["fcnn_tensor", "fcnn_image", "cnn", "densenet"]
    with pytest.raises(KeyError, match="registered"):
        build_model("resnet")


@pytest.mark.parametrize("name,input_shape", [("fcnn_tensor", (30, 3)), ("fcnn_image", (50, 50, 1))])
def test_fcnn_table1(name, input_shape):
    model = build_model(name)
    assert tuple(model.input.shape[1:]) == input_shape
    widths = [_shape(model, f"block{i}_dense")[0] for i in range(1, 9)]
    assert widths == [2500, 2000, 1800, 1500, 1500, 800, 200, 150]
    rates = [model.get_layer(f"block{i}_dropout").rate for i in range(1, 9)]
    assert rates == [0.4] + [0.2] * 7
    assert _shape(model, "probabilities") == (5,)


def test_cnn_table2():
    model = build_model("cnn")
    shapes = [_shape(model, f"block{i}_pool") for i in range(1, 5)]
    assert shapes == [(40, 40, 16), (30, 30, 32), (20, 20, 64), (10, 10, 128)]
    assert _shape(model, "probabilities") == (5,)


def test_densenet_table3():
    model = build_model("densenet")
    assert _shape(model, "stem_conv") == (50, 50, 20)
    assert _shape(model, "stem_pool") == (25, 25, 20)
    assert _shape(model, "block1_layer8_concat") == (25, 25, 100)
    assert _shape(model, "transition1_pool") == (12, 12, 90)
    assert _shape(model, "block2_layer8_concat") == (12, 12, 170)
    assert _shape(model, "transition2_pool") == (6, 6, 153)
    assert _shape(model, "block3_layer8_concat") == (6, 6, 233)
    assert _shape(model, "global_pool") == (233,)
    assert _shape(model, "probabilities") == (5,)
