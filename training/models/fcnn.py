"""Fully connected network of the paper (Table 1), on the particle tensor or on the jet image."""

from __future__ import annotations

import keras
from keras import layers

# Paper, Table 1: eight blocks [Dense(ReLU) -> Dropout -> BatchNormalization].
WIDTHS = (2500, 2000, 1800, 1500, 1500, 800, 200, 150)
DROPOUTS = (0.4, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2)


def build(input_shape: tuple[int, ...], n_classes: int, name: str = "fcnn",
          widths: tuple[int, ...] = WIDTHS, dropouts: tuple[float, ...] = DROPOUTS,
          bn_momentum: float = 0.99) -> keras.Model:
    if len(widths) != len(dropouts):
        raise ValueError("widths and dropouts need one entry per block")
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = layers.Flatten(name="flatten")(inputs)
    for i, (width, rate) in enumerate(zip(widths, dropouts), start=1):
        x = layers.Dense(width, activation="relu", name=f"block{i}_dense")(x)
        x = layers.Dropout(rate, name=f"block{i}_dropout")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{i}_bn")(x)
    # float32 softmax even under mixed precision, for a numerically safe loss
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
