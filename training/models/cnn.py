"""Convolutional network of the paper (Table 2): four [6x6 Conv2D -> 6x6 MaxPool, stride 1] blocks."""

from __future__ import annotations

import keras
from keras import layers

FILTERS = (16, 32, 64, 128)  # block outputs 40x40x16, 30x30x32, 20x20x64, 10x10x128 on 50x50


def build(input_shape: tuple[int, ...], n_classes: int, name: str = "cnn",
          filters: tuple[int, ...] = FILTERS, kernel_size: int = 6) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(f, kernel_size, padding="valid", activation="relu", name=f"block{i}_conv")(x)
        x = layers.MaxPooling2D(kernel_size, strides=1, name=f"block{i}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    # float32 softmax even under mixed precision, for a numerically safe loss
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
