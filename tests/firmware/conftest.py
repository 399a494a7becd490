"""Session fixtures for the firmware tests: int8 test models, golden outputs, builds.

The models are tiny Keras networks converted with full-int8 PTQ (weights random, which
is all bit-exactness needs); together they use every operator the generator supports,
SAME/VALID padding, strides, dilation, depth multipliers, ReLU/ReLU6 and missing
biases. Golden outputs come from the TFLM Python interpreter. Each model is generated
and compiled once per session (host build with ASan/UBSan; QEMU build on demand).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfleet.firmware.codegen import GeneratedModel, generate_from_file
from tinyfleet.firmware.golden import tflm_outputs
from tinyfleet.firmware.toolchain import BuildResult, cmake_build, missing_tools

N_GOLDEN = 300


def _convnet(keras: Any) -> Any:
    inp = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", depth_multiplier=2, activation="relu6"
    )(x)
    x = keras.layers.MaxPooling2D(2, strides=1)(x)
    x = keras.layers.AveragePooling2D(2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(5)(x))


def _nobias(keras: Any) -> Any:
    # Non-square, two channels, dilation, no biases anywhere, partial pooling windows.
    inp = keras.Input((10, 7, 2), batch_size=1)
    x = keras.layers.Conv2D(6, 3, dilation_rate=2, padding="same", use_bias=False)(inp)
    x = keras.layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.DepthwiseConv2D((2, 3), padding="valid", use_bias=False, activation="relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(7, use_bias=False, activation="relu6")(x))


def _strided(keras: Any) -> Any:
    # Strided VALID convolution with a 1x1 pointwise layer (MobileNet block shape).
    inp = keras.Input((12, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(4, (3, 3), strides=(2, 1), padding="valid", activation="relu6")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(8, 1, activation="relu")(x)
    x = keras.layers.AveragePooling2D((5, 10))(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(3)(x))


def _odd(keras: Any) -> Any:
    # Odd sizes for the DSP kernels' edge paths: an odd pixel count (25) and odd channel
    # counts in CONV_2D (5, 1x1 to 3), a depthwise layer of 3 channels (no 4-channel
    # group), a max pool the SIMD path cannot take (3 channels), an odd FC row count.
    inp = keras.Input((5, 5, 3), batch_size=1)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(3, 1)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(7)(x))


MODEL_BUILDERS: dict[str, Callable[[Any], Any]] = {
    "convnet": _convnet,
    "nobias": _nobias,
    "strided": _strided,
    "odd": _odd,
}


def convert_int8(model: Any, seed: int) -> bytes:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shape = (1, *model.input_shape[1:])

    def representative() -> Any:
        for _ in range(64):
            yield [rng.uniform(-1.0, 1.0, shape).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


@dataclass(frozen=True)
class FixtureModel:
    name: str
    path: Path
    generated: GeneratedModel
    model_dir: Path
    inputs: np.ndarray
    golden: np.ndarray


@pytest.fixture(scope="session")
def fixture_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FixtureModel]:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test models")
    import keras

    root = tmp_path_factory.mktemp("fw_models")
    paths: dict[str, Path] = {}
    for seed, (name, builder) in enumerate(MODEL_BUILDERS.items()):
        keras.utils.set_random_seed(seed)
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(convert_int8(builder(keras), seed))
    paths["digits"] = _digits_backbone(root / "digits")
    paths["presence"] = _presence_backbone(root / "presence")
    models: dict[str, FixtureModel] = {}
    for seed, (name, path) in enumerate(paths.items()):
        data = path.read_bytes()
        model_dir = root / f"{name}_gen"
        generated = generate_from_file(path, model_dir)
        rng = np.random.default_rng(100 + seed)
        inputs = rng.integers(-128, 128, size=(N_GOLDEN, generated.input_size), dtype=np.int8)
        if name == "digits":
            inputs[: N_GOLDEN // 2] = _real_digits(path, N_GOLDEN // 2)
        models[name] = FixtureModel(
            name, path, generated, model_dir, inputs, tflm_outputs(data, inputs)
        )
    return models


def _digits_backbone(out_dir: Path) -> Path:
    """The project's digits backbone, exported by `tinyfleet export` (1 epoch: fast)."""
    from tinyfleet.simulations.export import export_use_case

    export_use_case("digits", out_dir, seed=0, epochs=1)
    return out_dir / "backbone.tflite"


def _presence_backbone(out_dir: Path) -> Path:
    """The presence backbone (FC-only MLP, the smallest model the generator handles)."""
    from tinyfleet.simulations.export import export_use_case

    export_use_case("presence", out_dir, seed=0, epochs=1)
    return out_dir / "backbone.tflite"


def _real_digits(path: Path, n: int) -> np.ndarray:
    """Real handwritten digits, quantised with the model's input parameters."""
    from tinyfleet.device.tooling.tflite_model import load_tflite
    from tinyfleet.simulations.usecases.digits import all_images

    q = load_tflite(path).main.input_tensors()[0].quantization
    assert q is not None
    images = all_images()[:: max(1, len(all_images()) // n)][:n].reshape(n, -1)
    scaled = np.floor(np.abs(images / np.float32(q.scale)) + 0.5) * np.sign(images)
    return np.clip(scaled + q.zero_point, -128, 127).astype(np.int8)


def _require(target: str) -> None:
    missing = missing_tools(target)
    if missing:
        pytest.skip(f"toolchain for {target} absent: {', '.join(missing)} not on PATH")


BuildFn = Callable[[str, str, str], BuildResult]


@pytest.fixture(scope="session")
def firmware_build(
    fixture_models: dict[str, FixtureModel], tmp_path_factory: pytest.TempPathFactory
) -> BuildFn:
    """``build(model, target, kernels)``: the job runner for one fixture model, target
    of the target table and kernel set, built once per session on first use (host
    builds with ASan + UBSan)."""
    root = tmp_path_factory.mktemp("fw_builds")
    cache: dict[tuple[str, str, str], BuildResult] = {}

    def build(name: str, target: str, kernels: str) -> BuildResult:
        key = (name, target, kernels)
        if key not in cache:
            _require(target)
            cache[key] = cmake_build(
                target,
                root / "-".join(key),
                fixture_models[name].model_dir,
                sanitize=target == "host",
                kernels=kernels,
            )
        return cache[key]

    return build


@pytest.fixture(scope="session")
def host_builds(
    fixture_models: dict[str, FixtureModel], firmware_build: BuildFn
) -> dict[str, BuildResult]:
    """Host builds (ASan + UBSan, reference kernels) of the job runner per fixture model."""
    return {name: firmware_build(name, "host", "reference") for name in fixture_models}


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.fixture(scope="session")
def plain_runners(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Job runners without a backbone (pass-through stand-in), needing no TensorFlow:
    ``{"host": ASan/UBSan binary, "qemu": Cortex-M4F ELF, "qemu-mps2-an385": Cortex-M3
    ELF, "qemu-mps2-an505": Cortex-M33 ELF}`` for the toolchains present."""
    from tinyfleet.firmware.codegen import generate_passthrough

    root = tmp_path_factory.mktemp("fw_plain")
    generate_passthrough(8).write(root / "model")
    runners: dict[str, Path] = {}
    if not missing_tools("host"):
        build = cmake_build("host", root / "host", root / "model", sanitize=True)
        assert build.job_runner is not None
        runners["host"] = build.job_runner
    if not missing_tools("qemu-mps2-an386"):
        build = cmake_build("qemu-mps2-an386", root / "qemu", root / "model")
        assert build.job_runner is not None
        runners["qemu"] = build.job_runner
    for target in ("qemu-mps2-an385", "qemu-mps2-an505"):
        if not missing_tools(target):
            build = cmake_build(target, root / target, root / "model")
            assert build.job_runner is not None
            runners[target] = build.job_runner
    return runners
