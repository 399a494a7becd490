"""tinyfleet.device must import and run without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow.") or name in ("keras", "tf_keras"):
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
"""


def test_device_imports_without_tensorflow() -> None:
    code = BLOCKER + (
        "import tinyfleet.device.backbone, tinyfleet.device.learner, "
        "tinyfleet.device.tflite_model, tinyfleet.device.modelcard, "
        "tinyfleet.device.embedding_cache\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.tf
def test_device_runs_model_without_tensorflow(tiny_export) -> None:
    directory, card = tiny_export
    code = BLOCKER + (
        "import numpy as np\n"
        "from tinyfleet.device.backbone import Int8Backbone\n"
        "from tinyfleet.device.head import HeadSpec, MLPHead\n"
        "from tinyfleet.device.learner import OnlineLearner\n"
        "from tinyfleet.device.modelcard import inspect_tflite\n"
        f"b = Int8Backbone.from_file({str(directory / 'backbone.tflite')!r})\n"
        "learner = OnlineLearner(MLPHead(HeadSpec((8, 5), 'relu', 'softmax_ce')), b, 0.1)\n"
        "learner.learn(np.zeros((8, 8, 1), np.float32), 2)\n"
        f"assert inspect_tflite({str(directory / 'backbone.tflite')!r})['macs'] == 4736\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print(learner.stats.sgd_steps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
