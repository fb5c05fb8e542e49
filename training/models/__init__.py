"""Model registry: one file per architecture, every builder `build(input_shape, n_classes, name, **options)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras

from ..constants import CLASSES, IM_SIZE, INPUT_FEATURES, N_PARTICLES
from . import cnn, densenet, fcnn


@dataclass(frozen=True)
class ModelSpec:
    builder: Callable[..., keras.Model]
    representation: str  # "particles": (30, 3) tensor; "image": (50, 50, 1) jet image
    title: str  # as in the paper's tables


MODELS: dict[str, ModelSpec] = {
    "fcnn_tensor": ModelSpec(fcnn.build, "particles", "FCNN on tensor data"),
    "fcnn_image": ModelSpec(fcnn.build, "image", "FCNN on image data"),
    "cnn": ModelSpec(cnn.build, "image", "ConvNet"),
    "densenet": ModelSpec(densenet.build, "image", "DenseNet"),
}


def input_shape(representation: str, im_size: int = IM_SIZE) -> tuple[int, ...]:
    if representation == "particles":
        return (N_PARTICLES, len(INPUT_FEATURES))
    if representation == "image":
        return (im_size, im_size, 1)
    raise ValueError(f"unknown representation {representation!r}")


def build_model(name: str, im_size: int = IM_SIZE, **options) -> keras.Model:
    """Build registered model `name`; options go to its builder (e.g. smaller widths for tests)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    spec = MODELS[name]
    return spec.builder(input_shape(spec.representation, im_size), len(CLASSES), name=name, **options)
