"""tinyfleet.device is what a device runs: it imports and runs without TensorFlow and
without Flower (import-linter checks the static imports; this checks what really loads)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import tinyfleet.device

BLOCKER = """
import sys
BLOCKED = ("tensorflow", "keras", "tf_keras", "flwr", "ray")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
"""

DEVICE_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(tinyfleet.device.__path__, "tinyfleet.device.")
)


def test_every_device_module_imports_without_tensorflow_or_flower() -> None:
    assert "tinyfleet.device.wire.encode" in DEVICE_MODULES  # the walk found the subpackages
    code = BLOCKER + (
        "import importlib\n"
        f"for name in {DEVICE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in BLOCKED]\n"
        "assert not loaded, loaded\n"
        "print(len([m for m in sys.modules if m.startswith('tinyfleet.')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert int(out.stdout) >= len(DEVICE_MODULES)


def test_the_blocker_blocks() -> None:
    """The check above is only worth something if a blocked import really fails."""
    code = BLOCKER + "import flwr\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "blocked: flwr" in result.stderr


@pytest.mark.tf
def test_device_runs_model_without_tensorflow(tiny_export) -> None:
    directory, card = tiny_export
    code = BLOCKER + (
        "import numpy as np\n"
        "from tinyfleet.device.backbone import Int8Backbone\n"
        "from tinyfleet.device.head import HeadSpec, MLPHead\n"
        "from tinyfleet.device.learner import OnlineLearner\n"
        "from tinyfleet.device.tooling.modelcard import inspect_tflite\n"
        f"b = Int8Backbone.from_file({str(directory / 'backbone.tflite')!r})\n"
        "learner = OnlineLearner(MLPHead(HeadSpec((8, 5), 'relu', 'softmax_ce')), b, 0.1)\n"
        "learner.learn(np.zeros((8, 8, 1), np.float32), 2)\n"
        f"assert inspect_tflite({str(directory / 'backbone.tflite')!r})['macs'] == 4736\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in BLOCKED]\n"
        "print(learner.stats.sgd_steps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
