"""``tinyfleet export``: pre-train a backbone, quantise it to int8, write it with its card.

Pipeline for a use case with a backbone (digits):

1. Pre-train backbone + a linear softmax layer (:func:`tinyfleet.simulations.models.
   classifier`) on the use case's *pre-training* classes, which no federated device ever
   sees (``pretraining_data()`` of the use case module).
2. Standardise the embedding (:func:`standardize_embedding`: centre and scale folded
   into the last layer), then copy the weights into the same backbone built with
   ``batch_size=1``.
3. Full-integer post-training quantisation: representative dataset from the pre-training
   images, ``supported_ops=[TFLITE_BUILTINS_INT8]``, int8 input and output; weights are
   per-channel int8 (the converter's default).
4. Write ``backbone.tflite`` and ``model_card.json`` (tensor arena measured with the
   TFLM interpreter, MACs counted from the layers, head = the use case's head).

For sine there is no backbone: only a ``float-head`` card is written.

Determinism: ``keras.utils.set_random_seed(seed)`` and TF op determinism make the same
seed give the same ``.tflite`` bytes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.tooling.modelcard import build_model_card, float_head_card, write_model_card
from tinyfleet.errors import MissingToolError, UsageError

TFLITE_FILE = "backbone.tflite"
REPRESENTATIVE_SAMPLES = 256


@dataclass(frozen=True)
class ExportRecipe:
    """How to export one use case (``backbone`` names a recipe in ``models.BACKBONES``)."""

    use_case: str
    name: str
    sensor: str
    backbone: str | None = None
    embedding_dim: int = 32
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3


# Bump when a recipe changes what it exports: cached exports with another tag are stale
# and are re-exported by the use case's ``make_backbone``.
RECIPE_VERSION = 2


def recipe_tag(use_case: str) -> str:
    return f"{use_case}-v{RECIPE_VERSION}"


RECIPES: dict[str, ExportRecipe] = {
    "digits": ExportRecipe("digits", "digits-backbone", "camera", backbone="digits"),
    "sine": ExportRecipe("sine", "sine-head", "none"),
    "kws": ExportRecipe("kws", "kws-backbone", "microphone", backbone="kws", epochs=40),
    "presence": ExportRecipe(
        "presence",
        "presence-backbone",
        "co2",
        backbone="presence",
        embedding_dim=16,
        epochs=15,
        batch_size=128,
    ),
}


def _import_tf() -> tuple[Any, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        raise MissingToolError(
            "exporting a model needs TensorFlow: pip install 'tinyfleet[train]' "
            "(or point TINYFLEET_MODEL_DIR at an exported model)"
        ) from None
    return tf, keras


def _pretraining_data(
    use_case: str, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Pre-training inputs, labels, and what the card records about the data."""
    if use_case == "digits":
        from tinyfleet.simulations.usecases import digits

        return (*digits.pretraining_data(), {})
    if use_case == "kws":
        from tinyfleet.simulations.usecases import kws

        data = kws.kws_data(data_dir)
        return (*data.pretraining_data(), {"data": data.describe()})
    if use_case == "presence":
        from tinyfleet.simulations.usecases import presence

        return (*presence.pretraining_data(), {})
    raise UsageError(f"use case {use_case!r} has no backbone pre-training data")


def pretrain_backbone(
    recipe: ExportRecipe,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    *,
    epochs: int | None = None,
    backbone: str | None = None,
) -> tuple[Any, float]:
    """Train backbone + softmax on ``(x, y)``; returns the batch-1 backbone and the
    classifier's training accuracy."""
    tf, keras = _import_tf()
    from tinyfleet.simulations.models import BACKBONES, classifier

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    build = BACKBONES[backbone or str(recipe.backbone)]
    # An overriding recipe (tests: "tiny") keeps its own embedding size.
    size: dict[str, int] = {} if backbone else {"embedding_dim": recipe.embedding_dim}
    trainable = build(batch_size=None, **size)
    model = classifier(trainable, int(y.max()) + 1)
    model.compile(
        optimizer=keras.optimizers.Adam(recipe.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        x,
        y,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs if epochs is None else epochs,
        shuffle=True,
        verbose=0,
    )
    accuracy = float(history.history["accuracy"][-1])
    standardize_embedding(trainable, x)
    exportable = build(batch_size=1, **size)
    exportable.set_weights(trainable.get_weights())
    return exportable, accuracy


def standardize_embedding(backbone: Any, x: np.ndarray) -> None:
    """Fold a standardisation of the embedding into the last ``Dense`` layer, in place.

    Linear last layer: ``e' = (e - mean) / rms`` with the per-feature mean and one global
    RMS over ``x`` -- exact, as ``W' = W / rms``, ``b' = (b - mean) / rms``. ReLU last
    layer: only ``e' = e / rms`` (exact since ``relu(s z) = s relu(z)`` for ``s > 0``).
    Centred, unit-scale features let the device head learn with a larger, stable step.
    """
    layer = backbone.get_layer("embedding")
    embeddings = np.asarray(backbone.predict(x, batch_size=256, verbose=0), dtype=np.float64)
    linear = layer.get_config().get("activation") == "linear"
    mean = embeddings.mean(axis=0) if linear else np.zeros(embeddings.shape[1])
    rms = float(np.sqrt(np.mean((embeddings - mean) ** 2)))
    if not rms > 0:
        return
    weights, bias = layer.get_weights()
    layer.set_weights(
        [(weights / rms).astype(np.float32), ((bias - mean) / rms).astype(np.float32)]
    )


def quantize_int8(model: Any, representative: np.ndarray) -> bytes:
    """Full-integer int8 ``.tflite`` of a batch-1 Keras model (int8 input and output)."""
    tf, _ = _import_tf()
    samples = np.asarray(representative, dtype=np.float32)

    def dataset() -> Any:
        for sample in samples:
            yield [sample[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hold back TensorFlow's chatter (C++ logs, SavedModel summaries on stdout,
    converter warnings); shown only if the block fails."""
    from tinyfleet.device.tooling.arena import captured_fd

    failed = False
    try:
        with (
            warnings.catch_warnings(),
            captured_fd(2) as err,
            captured_fd(1) as out,
        ):
            warnings.simplefilter("ignore")
            try:
                yield
            except BaseException:
                failed = True
                raise
    finally:
        if failed:
            sys.stderr.write(b"".join(out + err).decode(errors="replace"))


def export_use_case(
    use_case: str,
    out_dir: str | Path,
    seed: int = 0,
    *,
    epochs: int | None = None,
    backbone: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Export ``use_case`` into ``out_dir``; returns the model card written there.

    ``epochs`` and ``backbone`` (a ``models.BACKBONES`` name) override the recipe; tests
    use ``backbone="tiny", epochs=1``. ``data_dir``: kws's Speech Commands folder
    (default: the generated espeak-ng corpus).
    """
    if use_case not in RECIPES:
        raise UsageError(f"cannot export use case {use_case!r}; choose from {sorted(RECIPES)}")
    if epochs is not None and epochs < 1:
        raise UsageError(f"epochs must be >= 1, got {epochs}")
    if data_dir is not None and use_case != "kws":
        raise UsageError(f"use case {use_case!r} takes no --data-dir")
    recipe = RECIPES[use_case]
    out = Path(out_dir)
    from tinyfleet.simulations.usecase import get_use_case

    head_spec = get_use_case(use_case).head_spec
    out.mkdir(parents=True, exist_ok=True)
    if recipe.backbone is None:
        card = float_head_card(
            name=recipe.name, use_case=use_case, head_spec=head_spec, sensor=recipe.sensor
        )
        write_model_card(card, out)
        return card

    x, y, about_data = _pretraining_data(use_case, data_dir)
    with _quiet():
        model, accuracy = pretrain_backbone(recipe, x, y, seed, epochs=epochs, backbone=backbone)
        order = np.random.default_rng(seed).permutation(len(x))[:REPRESENTATIVE_SAMPLES]
        tflite = quantize_int8(model, x[order])
    (out / TFLITE_FILE).write_bytes(tflite)
    embedding_dim = int(model.output.shape[-1])
    head = HeadSpec(
        (embedding_dim, *head_spec.layer_sizes[1:]), head_spec.activation, head_spec.loss
    )
    card = build_model_card(
        tflite,
        name=recipe.name,
        use_case=use_case,
        head_spec=head,
        sensor=recipe.sensor,
        tflite_file=TFLITE_FILE,
    )
    if use_case == "kws":
        from tinyfleet.device import frontend

        card["frontend"] = frontend.card_entry()  # firmware build: raw audio in
    card["pretraining"] = {
        "recipe": recipe_tag(use_case),
        "classes": int(y.max()) + 1,
        "samples": len(x),
        "seed": seed,
        "float_train_accuracy": round(accuracy, 4),
        **about_data,
    }
    write_model_card(card, out)
    return card
