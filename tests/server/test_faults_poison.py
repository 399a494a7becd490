"""Poisoned replies (issue 9, row 1): bounded updates, robust aggregates, quarantine.

One device of ten lies in every round it is sampled: all 1e30, 1000x its honest update,
its update sign-flipped, or random noise of its honest update's norm. The tolerance is
stated on what the model is for, few-shot MSE on 50 held-out sine devices (10 shots, 10
steps): the poisoned run ends within ``TOLERANCE`` x the clean run's (measured here:
clean TinyReptile 2.20; 1e30 and 1000x 2.39 (refused, liar quarantined after 3);
noise 2.37; sign-flip 2.96, the one attack a norm bound cannot see with one device per
round; without the bound 1e30 and 1000x end in NaN). The bound must refuse what it can
see, and refused devices are quarantined and never sampled again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.fewshot import FewShotEvaluator
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.quarantine import Quarantine
from tinyfleet.server.robust import robust_mean, update_ratio
from tinyfleet.server.run import quiet_flower, run_in_process
from tinyfleet.server.sampling import SeededSampler
from tinyfleet.server.strategies import FedAvg, FleetStrategy, Reptile, TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.fleet import Fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.faults
quiet_flower()

SEED = 5
SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(SEED)))
ONLINE = RoundPlan("online", inner_lr=0.02, k=10)
BATCH = RoundPlan("batch", inner_lr=0.02, support_size=10, epochs=1, batch_size=1)
DEVICES = 10
LIAR = 3
ATTACKS = ("1e30", "1000x", "sign-flip", "noise")


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def poison(phi: np.ndarray, theta: np.ndarray, attack: str, rng: np.random.Generator):
    delta = phi.astype(np.float64) - theta
    if attack == "1e30":
        return np.full_like(phi, 1e30)
    if attack == "1000x":
        return (theta + 1000.0 * delta).astype(np.float32)
    if attack == "sign-flip":
        return (theta - delta).astype(np.float32)
    noise = rng.standard_normal(phi.shape)
    noise *= np.linalg.norm(delta) / max(np.linalg.norm(noise), 1e-12)
    return (theta + noise).astype(np.float32)


def lying_call(attack: str | None, liar: int = LIAR) -> tuple[Callable[[Message], Message], list]:
    """The simulated ClientApp, except that device ``liar`` poisons its phi."""
    honest = client_app_call(make_client_app(SPEC, stream_for_device))
    rng = np.random.default_rng(99)
    lies: list[int] = []

    def call(message: Message) -> Message:
        reply = honest(message)
        device = int(message.content["config"][KEY_DEVICE_INDEX])  # type: ignore[index,arg-type]
        if attack is None or device != liar:
            return reply
        theta = message.content["arrays"].to_numpy_ndarrays()[0].astype(np.float64)  # type: ignore[union-attr]
        phi = reply.content["arrays"].to_numpy_ndarrays()[0]  # type: ignore[union-attr]
        lies.append(int(message.content["config"]["round"]))  # type: ignore[index,arg-type]
        bad = poison(phi, theta, attack, rng)
        content = RecordDict(
            {"arrays": ArrayRecord([bad]), "metrics": MetricRecord(dict(reply.content["metrics"]))}  # type: ignore[arg-type]
        )
        return Message(content, reply_to=message)

    return call, lies


def run(strategy: FleetStrategy, attack: str | None) -> tuple[np.ndarray, list[int]]:
    call, lies = lying_call(attack)
    final, _ = run_in_process(strategy, call, DEVICES, INITIAL, strategy.num_rounds)
    return final, lies


_EVALUATOR: list[FewShotEvaluator] = []
_CLEAN: dict[str, np.ndarray] = {}


def fewshot(theta: np.ndarray) -> float:
    """Few-shot MSE after adaptation on 50 held-out sine devices."""
    if not _EVALUATOR:
        use_case = get_use_case("sine")
        episodes = Fleet(use_case, use_case.make_backbone()).heldout_episodes(SEED, 50, 10, 100)
        _EVALUATOR.append(FewShotEvaluator(SPEC, episodes, 10, 0.02, "mse"))
    return float(_EVALUATOR[0].curve(theta)[-1])


def clean(name: str, make: Callable[[], FleetStrategy]) -> np.ndarray:
    if name not in _CLEAN:
        _CLEAN[name] = run(make(), None)[0]
    return _CLEAN[name]


def tiny(rounds: int = 300, **kwargs: object) -> TinyReptile:
    return TinyReptile(ONLINE, num_devices=DEVICES, seed=SEED, num_rounds=rounds, **kwargs)  # type: ignore[arg-type]


# Few-shot MSE of the poisoned run / the clean run's (measured 1.09, 1.09, 1.34, 1.08).
TOLERANCE = {"1e30": 1.15, "1000x": 1.15, "sign-flip": 1.45, "noise": 1.15}


@pytest.mark.parametrize("attack", ATTACKS)
def test_tinyreptile_poisoned_device_stays_within_tolerance(attack: str) -> None:
    reference = fewshot(clean("tiny", tiny))
    strategy = tiny()
    final, lies = run(strategy, attack)
    assert np.all(np.isfinite(final))
    assert lies, "the liar was never sampled"
    ratio = fewshot(final) / reference
    assert ratio < TOLERANCE[attack], f"{attack}: {ratio:.3f}"
    counters = strategy.counters
    if attack in ("1e30", "1000x"):
        # Refused by the bound, counted against the liar, quarantined after 3, then never
        # sampled again: every other round applied exactly once.
        assert counters.bounded_replies == len(lies) == 3
        assert counters.rejected_by_device == {LIAR: 3}
        assert set(strategy.quarantine.quarantined) == {LIAR}
        assert counters.accepted_replies == 300 - 3
    else:
        assert counters.rejected_replies == 0
        assert counters.accepted_replies == 300
    assert counters.max_update_ratio < 0.3  # honest (and same-norm) updates only


def test_unbounded_1e30_ruins_the_model_bounded_does_not() -> None:
    final, _ = run(tiny(max_update_ratio=None), "1e30")
    assert not np.all(np.isfinite(final)) or np.max(np.abs(final)) > 1e20
    final, _ = run(tiny(), "1e30")
    assert np.max(np.abs(final)) < 100


def reptile(aggregate: str, rounds: int = 60) -> Reptile:
    return Reptile(
        BATCH,
        num_devices=DEVICES,
        clients_per_round=5,
        seed=SEED,
        num_rounds=rounds,
        aggregate=aggregate,
        quarantine_after=None,
    )


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("aggregate", ["median", "trimmed-mean"])
def test_reptile_robust_aggregates_stay_within_tolerance(aggregate: str, attack: str) -> None:
    """5 of 10 devices per round; measured: clean mean 3.62, median 3.92, trimmed 3.75;
    poisoned median/trimmed-mean at most 4.18 (sign-flip), i.e. <= 1.16x clean mean."""
    reference = fewshot(clean("reptile", lambda: reptile("mean")))
    strategy = reptile(aggregate)
    final, lies = run(strategy, attack)
    assert lies and np.all(np.isfinite(final))
    assert fewshot(final) / reference < 1.2
    refused = attack in ("1e30", "1000x")
    assert strategy.counters.bounded_replies == (len(lies) if refused else 0)


def test_fedavg_bound_never_trips_on_honest_and_refuses_1000x() -> None:
    def fedavg(**kw: object) -> FedAvg:
        return FedAvg(
            BATCH, num_devices=DEVICES, clients_per_round=5, seed=SEED, num_rounds=20, **kw
        )  # type: ignore[arg-type]

    honest, _ = run(fedavg(), None)
    again, _ = run(fedavg(max_update_ratio=None), None)
    assert honest.tobytes() == again.tobytes()  # the bound never trips on honest updates
    strategy = fedavg(aggregate="median")
    final, lies = run(strategy, "1000x")
    assert lies and strategy.counters.bounded_replies == min(len(lies), 3)
    assert np.all(np.isfinite(final)) and np.max(np.abs(final)) < 100


def test_quarantine_is_deterministic_and_operator_clears_it() -> None:
    sampler = SeededSampler(DEVICES, SEED)
    quarantine = Quarantine(after=2)
    assert quarantine.select(sampler, 7, 3) == sampler.select(7, 3)
    assert not quarantine.reject(4, 1, "x")
    assert quarantine.reject(4, 2, "x")
    for r in range(1, 50):
        picks = quarantine.select(sampler, r, 3)
        assert len(picks) == 3 and 4 not in picks
        assert picks == quarantine.select(sampler, r, 3)
    quarantine.clear(4)
    assert quarantine.select(sampler, 7, 3) == sampler.select(7, 3)
    with pytest.raises(UsageError):
        Quarantine(after=0)


def test_robust_helpers() -> None:
    vectors = [np.array([v, -v], np.float32) for v in (1.0, 2.0, 3.0, 4.0, 1000.0)]
    np.testing.assert_array_equal(robust_mean(vectors, "median", 0.2), [3.0, -3.0])
    np.testing.assert_allclose(robust_mean(vectors, "trimmed-mean", 0.2), [3.0, -3.0])
    theta = np.ones(4, np.float32)
    assert update_ratio(theta * 3, theta) == pytest.approx(2.0)
    assert update_ratio(np.full(4, 1e38, np.float32), theta) > 1e30
    with pytest.raises(UsageError, match="aggregate"):
        tiny(aggregate="mode")
    with pytest.raises(UsageError, match="max_update_ratio"):
        tiny(max_update_ratio=-1.0)
