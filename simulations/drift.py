"""``tinyfleet drift``: a deployed device under field drift, scored prequentially.

Each of ``devices`` deployed devices (held-out: they never trained) receives a stream
with three drift points (:mod:`tinyfleet.simulations.drift_streams`); a label arrives
for a fraction ``label_fraction`` of its samples (the same samples for every method).
Prequential (test-then-train) evaluation: every sample is first predicted and scored
(accuracy: correct or not; mse: squared error, over the amplitude squared for sine:
``nmse``), then, if labelled, used for one online
SGD step (batch 1, ``lr``). Methods:

* ``static``: the deployed model: the meta-learned initialisation, adapted online while
  the device is commissioned (segment 0), then frozen from the first drift point on;
* ``scratch_online``: online learning over the whole stream from the scratch head (the
  shared initial head every strategy starts from);
* ``meta_online``: online learning over the whole stream from the TinyReptile
  initialisation (meta-learned on the use case's training fleet, as ``simulate`` does);
* ``meta_reset``: as ``meta_online``, but the device goes back to the meta-learned
  initialisation at each drift point (what a device does when told of, or detecting,
  a drift: the initialisation is made for learning a new task from a few labels).

Recovery after drift point ``d``: ``pre`` = the device-mean metric over the ``window``
samples before ``d``; the method has recovered at the first ``t`` whose window
``(t - window, t]`` lies after ``d`` and whose device-mean metric is within 5% of
``pre`` (accuracy >= 0.95 pre; (n)mse <= 1.05 pre); reported as labelled samples after ``d``
(mean over devices) or ``None`` when it never does before the next drift point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinyfleet.device.head import HeadSpec, MLPHead, unflatten
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.simulations.drift_streams import (
    DEFAULT_DEVICES,
    DEFAULT_LENGTH,
    DEFAULT_WINDOW,
    DriftStream,
    drift_stream,
)
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import Embedder, UseCase

METHODS = ("static", "scratch_online", "meta_online", "meta_reset")
TOLERANCE = 0.05
LABEL_TAG = 0x4C41424C  # "LABL"


@dataclass(frozen=True)
class DriftSettings:
    use_case: str
    seed: int = 0
    devices: int | None = None
    segment_length: int | None = None
    label_fraction: float = 0.25
    window: int | None = None
    lr: float | None = None
    meta_rounds: int | None = None
    meta_devices: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.label_fraction <= 1.0:
            raise UsageError(f"--label-fraction must be in (0, 1], got {self.label_fraction}")
        if self.window is not None and self.window < 2:
            raise UsageError(f"--window must be >= 2, got {self.window}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        for name in ("meta_rounds", "meta_devices", "segment_length", "devices"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.lr is not None and not (np.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be > 0, got {self.lr}")

    @property
    def length(self) -> int:
        if self.segment_length is not None:
            return self.segment_length
        return DEFAULT_LENGTH.get(self.use_case, 400)

    @property
    def window_size(self) -> int:
        return self.window if self.window is not None else DEFAULT_WINDOW.get(self.use_case, 50)

    @property
    def device_count(self) -> int:
        return self.devices if self.devices is not None else DEFAULT_DEVICES.get(self.use_case, 10)


def meta_learn(use_case: UseCase, embedder: Embedder | None, settings: DriftSettings) -> np.ndarray:
    """TinyReptile on the use case's training fleet with its defaults (``simulate``'s
    numbers for the same seed, rounds and devices); returns the learned head vector."""
    from tinyfleet.server.run import quiet_flower, run_in_process
    from tinyfleet.server.strategies import STRATEGIES
    from tinyfleet.simulations.clientapp import make_client_app
    from tinyfleet.simulations.fleet import Fleet
    from tinyfleet.simulations.runner import initial_head, settings_for

    quiet_flower()
    sim = settings_for(
        use_case,
        seed=settings.seed,
        rounds=settings.meta_rounds,
        devices=settings.meta_devices,
        strategies=("tinyreptile",),
    )
    fleet = Fleet(use_case, embedder)
    plan = RoundPlan("online", sim.inner_lr, k=sim.k, arena_bytes=fleet.arena_bytes)
    strategy = STRATEGIES["tinyreptile"](
        plan,
        clients_per_round=1,
        beta0=sim.beta0,
        num_devices=sim.devices,
        seed=sim.seed,
        num_rounds=sim.rounds,
        min_available_nodes=1,
    )
    client = make_client_app(use_case.head_spec, fleet.stream_for_device(), fleet.macs_per_sample)
    final, _ = run_in_process(
        strategy, client, sim.devices, initial_head(use_case, settings.seed), sim.rounds
    )
    return np.asarray(final, dtype=np.float32)


def prequential(
    theta: np.ndarray,
    spec: HeadSpec,
    x: np.ndarray,
    y: np.ndarray,
    labelled: np.ndarray,
    lr: float,
    metric: str,
    freeze_at: int | None = None,
    reset_at: tuple[int, ...] = (),
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """Per-sample scores, test then train (see the module docstring); no training from
    ``freeze_at`` on; the head goes back to ``theta`` at every ``reset_at`` index."""
    start = unflatten(spec, np.asarray(theta, np.float32))
    head = MLPHead(spec, params=[p.copy() for p in start])
    resets = set(reset_at)
    scores = np.empty(len(x))
    stop = len(x) if freeze_at is None else int(freeze_at)
    for t in range(len(x)):
        if t in resets:
            head = MLPHead(spec, params=[p.copy() for p in start])
        out = head.forward(x[t : t + 1])[0]
        if metric == "accuracy":
            scores[t] = float(int(np.argmax(out)) == int(y[t]))
        else:
            scores[t] = float(np.mean((out - y[t]) ** 2))
            if scale is not None:
                scores[t] /= float(scale[t]) ** 2
        if labelled[t] and t < stop:
            head.sgd_step(x[t], y[t], lr)
    return scores


def windowed(scores: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` samples (shorter at the start)."""
    csum = np.concatenate(([0.0], np.cumsum(scores)))
    ends = np.arange(1, len(scores) + 1)
    starts = np.maximum(0, ends - window)
    return (csum[ends] - csum[starts]) / (ends - starts)


def recovery(
    scores: np.ndarray,
    labelled: np.ndarray,
    points: tuple[int, ...],
    window: int,
    metric: str,
) -> list[dict[str, Any]]:
    """Per drift point: pre-drift metric, worst and recovered window metric, and the
    labelled samples (mean over devices) it took to recover (None: not before the next
    drift point). ``scores`` and ``labelled`` are ``(devices, T)``."""
    curve = np.mean([windowed(s, window) for s in scores], axis=0)
    out = []
    commissioned = float(curve[points[0] - 1])
    bounds = (*points, scores.shape[1])
    for i, d in enumerate(points):
        end = bounds[i + 1]
        pre = float(curve[d - 1])
        post = curve[d + window - 1 : end]
        ok = (
            post >= (1 - TOLERANCE) * pre if metric == "accuracy" else post <= (1 + TOLERANCE) * pre
        )
        hit = int(np.argmax(ok)) if ok.any() else None
        back = (
            post >= (1 - TOLERANCE) * commissioned
            if metric == "accuracy"
            else post <= (1 + TOLERANCE) * commissioned
        )
        row: dict[str, Any] = {
            "drift_point": d,
            "pre_drift": pre,
            "first_window_after": float(post[0]) if len(post) else None,
            "segment_end": float(curve[end - 1]),
            "recovered": hit is not None,
            # ... and to within 5% of the level before the FIRST drift point.
            "back_to_commissioned_level": bool(back.any()),
            "samples_to_recover": None,
            "labelled_to_recover": None,
        }
        if hit is not None:
            t = d + window - 1 + hit
            row["samples_to_recover"] = t - d + 1
            row["labelled_to_recover"] = float(np.mean(labelled[:, d : t + 1].sum(axis=1)))
        out.append(row)
    return out


def run_drift(settings: DriftSettings, use_case: UseCase) -> dict[str, Any]:
    """The drift experiment (module docstring); returns the report."""
    embedder = use_case.make_backbone()
    spec = use_case.head_spec
    lr = float(settings.lr if settings.lr is not None else use_case.defaults.get("adapt_lr", 0.02))
    from tinyfleet.simulations.runner import initial_head

    theta0 = initial_head(use_case, settings.seed)
    theta_meta = meta_learn(use_case, embedder, settings)
    streams: list[DriftStream] = []
    inputs: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    for index in range(settings.device_count):
        rng = device_task_rng(settings.seed, index, "heldout")
        stream = drift_stream(use_case.name, rng, settings.length)
        x = stream.x if embedder is None else embedder.embed(stream.x)
        inputs.append(np.asarray(x, np.float32).reshape(len(stream.x), -1))
        label_rng = np.random.default_rng([LABEL_TAG, settings.seed, index])
        masks.append(label_rng.random(len(stream.x)) < settings.label_fraction)
        streams.append(stream)
    points = streams[0].drift_points
    labelled = np.array(masks)
    methods: dict[str, dict[str, Any]] = {}
    for name in METHODS:
        theta = theta0 if name == "scratch_online" else theta_meta
        freeze = points[0] if name == "static" else None
        resets = points if name == "meta_reset" else ()
        scores = np.array(
            [
                prequential(theta, spec, x, s.y, m, lr, use_case.metric, freeze, resets, s.scale)
                for x, s, m in zip(inputs, streams, masks, strict=True)
            ]
        )
        curve = np.mean([windowed(s, settings.window_size) for s in scores], axis=0)
        bounds = (0, *points, scores.shape[1])
        methods[name] = {
            "curve": [round(float(v), 6) for v in curve],
            "segment_mean": [
                float(scores[:, a:b].mean()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            ],
            "recovery": recovery(scores, labelled, points, settings.window_size, use_case.metric),
        }
    return {
        "use_case": use_case.name,
        "seed": settings.seed,
        "metric": "nmse" if streams[0].scale is not None else use_case.metric,
        "settings": asdict(settings)
        | {
            "segment_length": settings.length,
            "lr": lr,
            "window": settings.window_size,
            "devices": settings.device_count,
        },
        "drift_points": list(points),
        "drift_labels": [list(s.drift_labels) for s in streams],
        "labels_per_device": float(labelled.sum(axis=1).mean()),
        "methods": methods,
        "targets": targets(methods),
    }


def targets(methods: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per drift point: did meta-online (and meta-reset) recover in fewer labels than
    scratch-online, and did the static model recover at all?"""
    rows = []
    for i, meta in enumerate(methods["meta_online"]["recovery"]):
        scratch = methods["scratch_online"]["recovery"][i]
        static = methods["static"]["recovery"][i]
        m, s = meta["labelled_to_recover"], scratch["labelled_to_recover"]
        r = methods["meta_reset"]["recovery"][i]["labelled_to_recover"]
        rows.append(
            {
                "drift_point": meta["drift_point"],
                "meta_labels": m,
                "meta_reset_labels": r,
                "scratch_labels": s,
                "meta_faster_than_scratch": m is not None and (s is None or m < s),
                "meta_at_least_as_fast": m is not None and (s is None or m <= s),
                "meta_reset_faster_than_scratch": r is not None and (s is None or r < s),
                "static_recovers": bool(static["recovered"]),
                "static_back_to_commissioned_level": bool(static["back_to_commissioned_level"]),
            }
        )
    return rows
