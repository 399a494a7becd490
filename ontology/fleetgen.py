"""Random but plausible device descriptions and model cards, for tests and benchmarks."""

from __future__ import annotations

import random
from typing import Any

_OPS = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "RELU",
    "RESHAPE",
    "SOFTMAX",
)
_SENSORS = ("camera", "microphone", "accelerometer", "temperature", "humidity", "co2")
_BOARDS = (  # board, mcu, cpu, clock, RAM, flash (datasheet figures)
    ("Arduino Nano 33 BLE Sense", "nRF52840", "cortex-m4f", 64_000_000, 262144, 1048576),
    ("Raspberry Pi Pico", "RP2040", "cortex-m0plus", 133_000_000, 270336, 2097152),
    ("STM32 Nucleo-F446RE", "STM32F446RE", "cortex-m4f", 180_000_000, 131072, 524288),
    ("STM32F746G-DISCO", "STM32F746NG", "cortex-m7", 216_000_000, 327680, 1048576),
    ("ESP32-S3-EYE", "ESP32-S3", "xtensa-lx7", 240_000_000, 524288, 8388608),
    ("Arduino Nicla Sense ME", "nRF52832", "cortex-m4f", 64_000_000, 65536, 524288),
    ("SparkFun Edge", "Apollo3 Blue", "cortex-m4f", 48_000_000, 393216, 1048576),
)
_SHAPES = {"camera": [[1, 8, 8, 1], [1, 96, 96, 1]], "microphone": [[1, 49, 40, 1]]}


def _firmware_builds(rng: random.Random, count: int) -> list[list[str]]:
    # A fleet runs a handful of firmware builds, each compiled with a subset of the ops.
    return [sorted(rng.sample(_OPS, rng.randint(2, len(_OPS)))) for _ in range(count)]


def _products(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """A catalogue of products: a board variant with its sensors (and their shapes)."""
    products = []
    for _ in range(count):
        board, mcu, cpu, clock, ram, flash = rng.choice(_BOARDS)
        sensors = sorted(rng.sample(_SENSORS, rng.randint(0, 3)))
        product: dict[str, Any] = {
            "board": board,
            "mcu": mcu,
            "cpu": cpu,
            "clock_hz": clock,
            # boards ship in variants and firmware reserves some RAM: vary it a little
            "ram_bytes": ram - rng.choice((0, 0, 16384, 32768)),
            "flash_bytes": flash,
            "sensors": sensors,
        }
        if rng.random() < 0.2:
            product["max_arena_bytes"] = rng.choice((32768, 65536, 131072))
        shaped = [s for s in sensors if s in _SHAPES and rng.random() < 0.3]
        if shaped:
            product["sensor_shapes"] = {s: rng.choice(_SHAPES[s]) for s in shaped}
        products.append(product)
    return products


def generate_devices(
    count: int, seed: int = 0, builds: int = 12, products: int = 80
) -> list[dict[str, Any]]:
    """``count`` device descriptions: each one of ``products`` products (real boards with
    random sensor sets) running one of ``builds`` firmware builds (random operator sets).
    """
    rng = random.Random(seed)
    firmware = _firmware_builds(rng, builds)
    catalogue = _products(rng, products)
    devices = []
    for i in range(count):
        build = rng.randrange(builds)
        d: dict[str, Any] = {"device_id": f"dev-{i:06d}", "fleet": "default", "protocol_version": 1}
        d.update(rng.choice(catalogue))
        d["firmware"] = {"name": "tinyfleet-fw", "version": f"0.{build % 3}.0"}
        d["operators"] = firmware[build]
        devices.append(d)
    return devices


def generate_cards(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` model cards of both kinds with varied sizes, operators and sensors."""
    rng = random.Random(seed + 1)
    cards = []
    for i in range(count):
        float_head = rng.random() < 0.25
        sensor = "none" if float_head and rng.random() < 0.5 else rng.choice(_SENSORS)
        shape = rng.choice(_SHAPES.get(sensor, [[1, 4]]))
        sizes = [rng.choice((16, 32, 64)), rng.choice((2, 5, 10))]
        params = sizes[0] * sizes[1] + sizes[1]
        cards.append(
            {
                "name": f"model-{i:02d}",
                "version": str(rng.randint(1, 3)),
                "use_case": "generated",
                "kind": "float-head" if float_head else "int8-backbone+float-head",
                "tflite_file": None if float_head else "backbone.tflite",
                "sha256": None,
                "input": {"shape": shape, "dtype": "float32" if float_head else "int8"},
                "output": {"shape": [1, sizes[0]], "dtype": "int8"},
                "operators": [] if float_head else sorted(rng.sample(_OPS, rng.randint(1, 4))),
                "layers": [],
                "flash_bytes": 0 if float_head else rng.randint(8_000, 600_000),
                "arena_bytes": 0 if float_head else rng.randint(2_000, 300_000),
                "macs": 0 if float_head else rng.randint(10_000, 5_000_000),
                "head": {
                    "layer_sizes": sizes,
                    "activation": "relu",
                    "loss": "softmax_ce",
                    "num_params": params,
                    "train_ram_bytes": 4 * (2 * params + sizes[0] + sizes[1]),
                },
                "sensor": sensor,
            }
        )
    return cards
