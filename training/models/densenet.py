"""DenseNet of the paper (Table 3), after Huang et al. (arXiv:1608.06993), with bottleneck layers.

Table 3's shapes are 25x25x100, 12x12x90, 12x12x170, 6x6x153, 6x6x233: with 20 initial filters and
8 layers per block that means growth rate k = 10 and transition compression 0.9. The paper's caption
says k = 8, which would give 25x25x84; we follow the table.
"""

from __future__ import annotations

import keras
from keras import layers


def build(input_shape: tuple[int, ...], n_classes: int, name: str = "densenet",
          growth_rate: int = 10, layers_per_block: int = 8, n_blocks: int = 3,
          initial_filters: int = 20, compression: float = 0.9, bottleneck: int = 4,
          bn_momentum: float = 0.99) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = layers.Conv2D(initial_filters, 7, padding="same", use_bias=False, name="stem_conv")(inputs)
    bn = {"momentum": bn_momentum}
    x = _bn_relu(x, "stem", bn)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)  # 50 -> 25
    for b in range(1, n_blocks + 1):
        x = _dense_block(x, layers_per_block, growth_rate, bottleneck, f"block{b}", bn)
        if b < n_blocks:
            x = _transition(x, int(x.shape[-1] * compression), f"transition{b}", bn)
    x = _bn_relu(x, "final", bn)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    # float32 softmax even under mixed precision, for a numerically safe loss
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _bn_relu(x, name: str, bn: dict):
    x = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_bn", **bn)(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _dense_block(x, n_layers: int, growth_rate: int, bottleneck: int, name: str, bn: dict):
    for i in range(1, n_layers + 1):
        # H_l = BN-ReLU-Conv(1x1, 4k) -> BN-ReLU-Conv(3x3, k), concatenated onto all earlier maps
        y = _bn_relu(x, f"{name}_layer{i}_a", bn)
        y = layers.Conv2D(bottleneck * growth_rate, 1, use_bias=False, name=f"{name}_layer{i}_conv1")(y)
        y = _bn_relu(y, f"{name}_layer{i}_b", bn)
        y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_layer{i}_conv3")(y)
        x = layers.Concatenate(name=f"{name}_layer{i}_concat")([x, y])
    return x


def _transition(x, filters: int, name: str, bn: dict):
    x = _bn_relu(x, name, bn)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)  # 25 -> 12, 12 -> 6
