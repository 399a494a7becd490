"""Few-shot evaluation on held-out devices (devices that never trained).

Each held-out device contributes an :class:`Episode`: ``k`` shots to adapt on and fresh
query points of the same task to measure on. Adaptation is the device's own online
learning: ``steps`` SGD steps with batch 1 (step ``i`` uses shot ``i mod k``), identical
for every strategy. The metric (mse or accuracy on the query points) is recorded before
adaptation and after every step: the adaptation curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, MetricRecord

from tinyfleet.device.head import HeadSpec, MLPHead, unflatten
from tinyfleet.errors import UsageError

METRICS = ("mse", "accuracy")


@dataclass(frozen=True)
class Episode:
    """One held-out device's shots and query set (head inputs, after any backbone)."""

    shots_x: np.ndarray
    shots_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray


class FewShotEvaluator:
    """Mean adaptation curve over episodes.

    Parameters
    ----------
    spec
        The head.
    episodes
        Held-out devices' shots and queries.
    steps
        Online adaptation steps (>= 0).
    lr
        Adaptation learning rate.
    metric
        ``"mse"`` (lower is better) or ``"accuracy"``.
    """

    def __init__(
        self, spec: HeadSpec, episodes: Sequence[Episode], steps: int, lr: float, metric: str
    ) -> None:
        if not episodes:
            raise UsageError("few-shot evaluation needs >= 1 held-out device")
        if metric not in METRICS:
            raise UsageError(f"unknown metric {metric!r}; choose from {METRICS}")
        if int(steps) < 0:
            raise UsageError(f"adaptation steps must be >= 0, got {steps}")
        self.spec = spec
        self.episodes = list(episodes)
        self.steps = int(steps)
        self.lr = float(lr)
        self.metric = metric

    def _measure(self, query_x: np.ndarray, query_y: np.ndarray) -> Callable[[MLPHead], float]:
        if self.metric == "mse":
            return lambda head: head.loss(query_x, query_y)
        return lambda head: head.accuracy(query_x, query_y)

    def curve(self, theta: np.ndarray) -> np.ndarray:
        """Mean metric over episodes at steps ``0..steps`` (length ``steps + 1``)."""
        curves = [
            online_adaptation_curve(
                theta,
                self.spec,
                ep.shots_x,
                ep.shots_y,
                self.steps,
                self.lr,
                self._measure(ep.query_x, ep.query_y),
            )
            for ep in self.episodes
        ]
        return np.mean(np.asarray(curves, dtype=np.float64), axis=0)

    def evaluate_fn(
        self, eval_rounds: set[int], on_round: Callable[[int], None] | None = None
    ) -> Callable[[int, ArrayRecord], MetricRecord | None]:
        """A Flower ``evaluate_fn`` for ``Strategy.start``: the held-out metric before and
        after adaptation at the rounds in ``eval_rounds`` (round 0 = the initial model).
        ``on_round(round)`` is called every round (progress bars)."""

        def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            if on_round is not None:
                on_round(server_round)
            if server_round not in eval_rounds:
                return None
            curve = self.curve(np.asarray(arrays.to_numpy_ndarrays()[0], dtype=np.float32))
            return MetricRecord({"fewshot": float(curve[-1]), "before": float(curve[0])})

        return evaluate


def online_adaptation_curve(
    head_vector: np.ndarray,
    spec: HeadSpec,
    shots_x: np.ndarray,
    shots_y: np.ndarray,
    steps: int,
    lr: float,
    evaluate: Callable[[MLPHead], float],
) -> list[float]:
    """Adapt online from ``head_vector`` on the shots (step ``i`` uses shot ``i mod k``,
    batch 1); return ``evaluate(head)`` before the first step and after each step
    (``steps + 1`` values)."""
    if len(shots_x) < 1 or len(shots_x) != len(shots_y):
        raise UsageError("few-shot adaptation needs >= 1 shot with matching targets")
    if int(steps) < 0:
        raise UsageError(f"adaptation steps must be >= 0, got {steps}")
    head = MLPHead(spec, params=unflatten(spec, np.asarray(head_vector, np.float32)))
    curve = [float(evaluate(head))]
    for step in range(int(steps)):
        i = step % len(shots_x)
        head.sgd_step(shots_x[i], shots_y[i], lr)
        curve.append(float(evaluate(head)))
    return curve
