"""Sine regression use case (the Reptile papers' setup).

Each device observes its own sine wave ``y = a * sin(x + p)`` with amplitude
``a ~ U(0.1, 5)`` and phase ``p ~ U(0, pi)``; inputs ``x ~ U(-5, 5)``. There is no
backbone: the whole MLP 1-40-40-1 (tanh, mse) is the trainable float head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.errors import UsageError
from tinyfleet.simulations.usecase import UseCase, register_use_case

X_RANGE = (-5.0, 5.0)
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, float(np.pi))


@dataclass(frozen=True)
class SineTask:
    """One device's sine wave; :meth:`sample` draws fresh points from it."""

    amplitude: float
    phase: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.amplitude) or not np.isfinite(self.phase):
            raise UsageError("sine amplitude and phase must be finite")

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points: ``x`` of shape ``(n, 1)`` and ``y`` of shape ``(n, 1)``, float32."""
        x = rng.uniform(*X_RANGE, size=(int(n), 1))
        y = self.amplitude * np.sin(x + self.phase)
        return x.astype(np.float32), y.astype(np.float32)


def sample_sine_task(rng: np.random.Generator, split: str) -> SineTask:
    """A new device's task; train, held-out and validation devices come from the same
    distribution (they differ only by the random stream the caller passes in)."""
    if split not in ("train", "heldout", "validation"):
        raise UsageError(f"unknown split {split!r}; expected 'train', 'heldout' or 'validation'")
    amplitude = float(rng.uniform(*AMPLITUDE_RANGE))
    phase = float(rng.uniform(*PHASE_RANGE))
    return SineTask(amplitude, phase)


SINE_HEAD = HeadSpec((1, 40, 40, 1), "tanh", "mse")

# Defaults used by ``tinyfleet simulate sine`` (see docs/algorithms.md for the reasoning).
SINE_DEFAULTS: dict[str, object] = {
    "devices": 1000,
    "rounds": 10000,
    "inner_lr": 0.02,
    "k": 10,
    "beta0": 1.0,
    "support_size": 50,
    "epochs": 1,
    # Baselines in their reference form: minibatches of 10 from the stored support set
    # (openai/supervised-reptile's sine demo; FedAvg's B = 10), with the device learning
    # rate tuned on a grid {0.02, 0.05, 0.06, 0.07, 0.08, 0.1}: 0.07 was best for both
    # (0.08 made FedAvg diverge). --batch-size 1 gives stronger baselines at ~TinyReptile's
    # RAM (sine samples are 8 bytes): see docs/algorithms.md.
    "batch_size": 10,
    "baseline_inner_lr": 0.07,
    "clients_per_round": 5,
    "shots": 10,
    "adapt_steps": 10,
    "adapt_lr": 0.02,
    "query_size": 100,
    "heldout_devices": 100,
    "max_shots": 1000,
}


@register_use_case("sine")
def sine_use_case() -> UseCase:
    return UseCase(
        name="sine",
        metric="mse",
        head_spec=SINE_HEAD,
        sample_task=sample_sine_task,
        defaults=dict(SINE_DEFAULTS),
    )
