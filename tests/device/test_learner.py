"""OnlineLearner: one step equals MLPHead.sgd_step on the embedding; cost accounting."""

from __future__ import annotations

import numpy as np
import pytest

from tinyfleet.device.backbone import Int8Backbone
from tinyfleet.device.head import HeadSpec, MLPHead
from tinyfleet.device.learner import (
    OnlineLearner,
    cobs_frame_bytes,
    link_buffer_bytes,
    minibatch_sgd_ram_bytes,
    online_sgd_ram_bytes,
    sample_bytes_for,
)
from tinyfleet.errors import UsageError
from tinyfleet.simulations.usecases import digits


@pytest.mark.tf
def test_learn_equals_head_step_on_embedding(tiny_bytes: bytes) -> None:
    backbone = Int8Backbone(tiny_bytes)
    spec = HeadSpec((8, 16, 5), "relu", "softmax_ce")
    learner = OnlineLearner(MLPHead(spec, seed=1), backbone, lr=0.05)
    reference = MLPHead(spec, seed=1)
    task = digits.sample_digits_task(np.random.default_rng(0), "train")
    x, y = task.sample(12, np.random.default_rng(1))
    for sample, label in zip(x, y, strict=True):
        loss = learner.learn(sample, int(label))
        assert loss == reference.sgd_step(backbone.embed(sample), int(label), 0.05)
        np.testing.assert_array_equal(learner.head.get_vector(), reference.get_vector())
    stats = learner.stats
    assert stats.sgd_steps == 12
    assert stats.macs == 12 * (backbone.macs + spec.macs_sgd_step)
    # params 8*16+16+16*5+5 = 229; activations 8+16+5; deltas 2*16; sample 64 floats + label
    assert stats.peak_ram_bytes == 4 * 229 + 4 * (29 + 32) + (4 * 64 + 4) + backbone.arena_bytes
    with pytest.raises(UsageError):
        learner.learn(x[:2], y[:2])


def test_learner_without_backbone_on_raw_inputs() -> None:
    spec = HeadSpec((1, 40, 40, 1), "tanh", "mse")
    learner = OnlineLearner(MLPHead(spec, seed=0), None, lr=0.02)
    reference = MLPHead(spec, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.uniform(-5, 5, size=1).astype(np.float32)
        y = np.sin(x)
        assert learner.learn(x, y) == reference.sgd_step(x, y, 0.02)
    np.testing.assert_array_equal(learner.head.get_vector(), reference.get_vector())
    assert learner.stats.macs == 5 * spec.macs_sgd_step
    assert learner.stats.peak_ram_bytes == online_sgd_ram_bytes(spec, 8, 0)


def test_ram_formulas_by_hand() -> None:
    spec = HeadSpec((32, 32, 5), "relu", "softmax_ce")
    assert spec.num_params == 1221
    assert sample_bytes_for(spec, (8, 8, 1)) == 256 + 4
    assert sample_bytes_for(HeadSpec((1, 40, 1)), None) == 4 + 4
    assert online_sgd_ram_bytes(spec, 100, 1000) == 4884 + 4 * 69 + 4 * 64 + 100 + 1000
    sgd = minibatch_sgd_ram_bytes(spec, batch=10, stored_samples=50, sample_bytes=260)
    # One accumulator + ONE sample's activations: per-sample gradients are summed one
    # sample at a time, so the batch size does not multiply the activations (issue 11).
    assert sgd == 2 * 4884 + 50 * 260 + 4 * (69 + 64)
    assert minibatch_sgd_ram_bytes(spec, 1, 50, 260) == sgd
    adam = minibatch_sgd_ram_bytes(spec, 10, 50, 260, arena_bytes=7, optimizer="adam")
    assert adam - sgd == 2 * 4884 + 7
    with pytest.raises(UsageError):
        minibatch_sgd_ram_bytes(spec, 0, 50, 260)
    with pytest.raises(UsageError):
        minibatch_sgd_ram_bytes(spec, 1, 50, 260, optimizer="rmsprop")


def test_link_buffers_by_hand() -> None:
    # Receive: kind + task + CRC-16; reply: kind + reply; frame: COBS(kind + reply + CRC)
    # with one code byte per 254 plus the leading code byte and the 0x00 delimiter.
    assert cobs_frame_bytes(7313) == 7315 + 7315 // 254 + 2 == 7345
    assert link_buffer_bytes(7320, 7312) == (1 + 7320 + 2) + (1 + 7312) + 7345
    assert link_buffer_bytes(7420, 712) == 7423 + 713 + (715 + 2 + 2)
    assert link_buffer_bytes(0, 0) == 0  # a device that never talks (scratch)
    with pytest.raises(UsageError):
        link_buffer_bytes(-1, 10)


def test_bad_learner_arguments() -> None:
    spec = HeadSpec((3, 2))
    with pytest.raises(UsageError):
        OnlineLearner(MLPHead(spec), None, lr=0.0)
