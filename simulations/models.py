"""Keras recipes: backbones (input -> embedding) and the pre-training classifier on top.

Every recipe takes ``batch_size``: ``None`` for training, ``1`` for export -- a fixed
batch of 1 keeps SHAPE/STRIDED_SLICE/PACK ops out of the ``.tflite`` (microcontrollers
run batch 1). All layers have explicit names so the exported bytes do not depend on
how many models the process built before (Keras numbers anonymous layers globally).

Backbones use only operators the firmware implements: CONV_2D, DEPTHWISE_CONV_2D,
MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE (flatten), FULLY_CONNECTED (fused ReLU or none).
The last layer of every backbone is a ``Dense`` named ``"embedding"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras


def digits_backbone(batch_size: int | None = None, embedding_dim: int = 32) -> Any:
    """8x8x1 image -> ``embedding_dim`` features (about 16k params, ~101k MACs).

    Convolutions and a 64-unit ReLU layer, then a LINEAR projection to the embedding:
    a linear last layer lets export fold a standardisation (centre, unit RMS) into its
    weights, which makes the on-device head's SGD well conditioned (see
    :func:`tinyfleet.simulations.export.standardize_embedding`).
    """
    layers = keras.layers
    inp = keras.Input((8, 8, 1), batch_size=batch_size, name="image")
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw2")(h)
    h = layers.Conv2D(16, 1, activation="relu", name="pw2")(h)
    h = layers.MaxPooling2D(2, name="maxpool2")(h)
    h = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(h)
    h = layers.AveragePooling2D(2, name="avgpool3")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(64, activation="relu", name="fc4")(h)
    out = layers.Dense(embedding_dim, name="embedding")(h)
    return keras.Model(inp, out, name="digits_backbone")


def tiny_backbone(batch_size: int | None = None, embedding_dim: int = 8) -> Any:
    """A very small 8x8x1 backbone for tests (fast to train; MACs easy to count by hand):

    conv 3x3 same, 4 filters: 8*8*4 outputs * 9 = 2304 MACs (40 params);
    depthwise 3x3 same:       8*8*4 * 9        = 2304 MACs (40 params);
    max-pool 2 -> 4x4x4, average-pool 2 -> 2x2x4, flatten 16;
    dense 16 -> 8:            8 * 16           =  128 MACs (136 params).
    """
    layers = keras.layers
    inp = keras.Input((8, 8, 1), batch_size=batch_size, name="image")
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw1")(h)
    h = layers.MaxPooling2D(2, name="maxpool1")(h)
    h = layers.AveragePooling2D(2, name="avgpool1")(h)
    h = layers.Flatten(name="flatten")(h)
    out = layers.Dense(embedding_dim, activation="relu", name="embedding")(h)
    return keras.Model(inp, out, name="tiny_backbone")


def kws_backbone(batch_size: int | None = None, embedding_dim: int = 32) -> Any:
    """DS-CNN-style keyword backbone (Zhang et al. 2017, "Hello Edge"), small:
    49x10x1 q8.7 MFCCs -> ``embedding_dim`` features (~12k params, ~0.33M MACs).

    conv 10x4 stride 2 (32 filters) -> 25x5x32; two depthwise-separable blocks
    (depthwise 3x3 + pointwise 1x1, ReLU) with a 2x2 max-pool between them -> 12x2x32;
    global average pool; dense 64 ReLU; LINEAR dense embedding (standardised at export).
    """
    layers = keras.layers
    inp = keras.Input((49, 10, 1), batch_size=batch_size, name="mfcc")
    h = layers.Conv2D(32, (10, 4), strides=2, padding="same", activation="relu", name="conv1")(inp)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw2")(h)
    h = layers.Conv2D(32, 1, activation="relu", name="pw2")(h)
    h = layers.MaxPooling2D(2, name="maxpool2")(h)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw3")(h)
    h = layers.Conv2D(32, 1, activation="relu", name="pw3")(h)
    h = layers.AveragePooling2D((12, 2), name="avgpool3")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(64, activation="relu", name="fc4")(h)
    out = layers.Dense(embedding_dim, name="embedding")(h)
    return keras.Model(inp, out, name="kws_backbone")


def presence_backbone(batch_size: int | None = None, embedding_dim: int = 16) -> Any:
    """6 sensor features -> ``embedding_dim``: an FC-only MLP (the smallest model the
    firmware generator handles: FULLY_CONNECTED only).

    dense 6 -> 32 ReLU:   6 * 32  = 192 MACs (224 params);
    dense 32 -> 16 linear: 32 * 16 = 512 MACs (528 params): 704 MACs in all.
    """
    layers = keras.layers
    inp = keras.Input((6,), batch_size=batch_size, name="readings")
    h = layers.Dense(32, activation="relu", name="fc1")(inp)
    out = layers.Dense(embedding_dim, name="embedding")(h)
    return keras.Model(inp, out, name="presence_backbone")


BACKBONES: dict[str, Callable[..., Any]] = {
    "digits": digits_backbone,
    "kws": kws_backbone,
    "presence": presence_backbone,
    "tiny": tiny_backbone,
}


def classifier(backbone: Any, num_classes: int) -> Any:
    """Backbone + linear softmax layer, for pre-training the backbone."""
    logits = keras.layers.Dense(num_classes, name="pretrain_logits")(backbone.output)
    return keras.Model(backbone.input, logits, name=f"{backbone.name}_classifier")
