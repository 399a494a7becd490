"""TinyReptile, Reptile and FedAvg as Flower Message-API strategies.

All three keep Flower's ``Strategy.start()`` round loop and fill only the hooks
(``configure_train``/``aggregate_train``/``configure_evaluate``/``aggregate_evaluate``).
Devices are picked by a replaceable :class:`~tinyfleet.server.sampling.DeviceSampler`;
each Message carries the device index in its config (the device's data depends only on
``(seed, device index, round)``, so any node may serve any device: the same numbers come
out in process, under the Simulation Engine, or through an MQTT gateway).

Updates (``r`` = 0-based round index ``server_round - 1``, ``R`` = ``num_rounds``)::

    TinyReptile  theta <- theta + beta_r * (phi - theta),      ONE device per round
    Reptile      theta <- theta + beta_r * (mean(phi) - theta), M devices per round
    FedAvg       theta <- sum_i w_i phi_i / sum_i w_i,           w_i = num-examples
    beta_r = beta0 * (1 - r / R)                                 (linear anneal)

A reply that carries an error, no arrays, more than one array, the wrong shape, a
NaN/Inf, or an update ``phi - theta`` over the norm bound (server/robust.py) is rejected:
counted in ``rejected_replies`` (and per device), logged, and never changes theta. A device
whose replies are refused ``quarantine_after`` times is no longer sampled
(server/quarantine.py). Multi-device rounds may combine by ``aggregate="median"`` or
``"trimmed-mean"`` instead of the plain mean.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from tinyfleet.device.wire.contract import (
    KEY_DEVICE_INDEX,
    KEY_ROUND,
    KEY_SEED,
    METRIC_BYTES_DOWN,
    METRIC_BYTES_UP,
    METRIC_DEVICE_INDEX,
    METRIC_GRAD_EVALS,
    METRIC_LOSS,
    METRIC_NUM_EXAMPLES,
    RoundPlan,
)
from tinyfleet.errors import UsageError
from tinyfleet.server.counters import StrategyCounters
from tinyfleet.server.quarantine import DEFAULT_QUARANTINE_AFTER
from tinyfleet.server.records import (
    ARRAYS_KEY,
    CONFIG_KEY,
    METRICS_KEY,
    model_vector,
    vector_record,
)
from tinyfleet.server.replies import ReplyGuard, refused_by_relay, reply_device
from tinyfleet.server.robust import (
    DEFAULT_MAX_UPDATE_RATIO,
    DEFAULT_MIN_NORM,
    DEFAULT_TRIM_FRACTION,
    check_settings,
    plain_mean,
    robust_mean,
)
from tinyfleet.server.sampling import DeviceSampler, SeededSampler
from tinyfleet.server.validation import check_run_settings

LOG = logging.getLogger(__name__)


def annealed_beta(beta0: float, server_round: int, num_rounds: int) -> float:
    """``beta0 * (1 - (server_round - 1) / num_rounds)``: beta0 in round 1, beta0/R last."""
    return float(beta0) * (1.0 - (int(server_round) - 1) / int(num_rounds))


def outer_step(theta: np.ndarray, phi: np.ndarray, beta: float) -> np.ndarray:
    """The Reptile outer step ``theta + beta * (phi - theta)`` in float32."""
    return (theta + np.float32(beta) * (phi - theta)).astype(np.float32)


class FleetStrategy(Strategy):
    """Shared machinery: seeded device choice, contract messages, reply validation.

    Parameters
    ----------
    plan
        What each device does locally (sent in the config).
    num_devices
        Training devices ``0 .. num_devices - 1``.
    clients_per_round
        Devices per round.
    seed
        Run seed: device choice and every device's randomness derive from it.
    num_rounds
        Rounds the run will have (for the beta anneal).
    beta0
        Initial outer step size (unused by FedAvg).
    sampler
        Replaces the default :class:`SeededSampler` (e.g. a knowledge-graph eligibility
        query).
    min_available_nodes, node_wait_s
        Wait up to ``node_wait_s`` for this many nodes to register with the grid.
    arrayrecord_key, configrecord_key, metricrecord_key
        Record keys of the contract.
    max_update_ratio, min_norm
        Refuse a reply whose ``||phi - theta||`` exceeds
        ``max_update_ratio * max(||theta||, min_norm)`` (None: no bound).
    aggregate, trim_fraction
        ``"mean"`` (default), ``"median"`` or ``"trimmed-mean"`` of a round's replies.
    quarantine_after
        Refused replies after which a device is no longer sampled (None: never).
    on_quarantine
        ``on_quarantine(device, round, reason)`` when a device is quarantined.
    """

    name = "fleet"

    def __init__(
        self,
        plan: RoundPlan,
        *,
        num_devices: int,
        clients_per_round: int = 1,
        seed: int = 0,
        num_rounds: int = 1,
        beta0: float = 1.0,
        sampler: DeviceSampler | None = None,
        min_available_nodes: int = 1,
        node_wait_s: float = 60.0,
        arrayrecord_key: str = ARRAYS_KEY,
        configrecord_key: str = CONFIG_KEY,
        metricrecord_key: str = METRICS_KEY,
        max_update_ratio: float | None = DEFAULT_MAX_UPDATE_RATIO,
        min_norm: float = DEFAULT_MIN_NORM,
        aggregate: str = "mean",
        trim_fraction: float = DEFAULT_TRIM_FRACTION,
        quarantine_after: int | None = DEFAULT_QUARANTINE_AFTER,
        on_quarantine: Callable[[int, int, str], None] | None = None,
    ) -> None:
        check_run_settings(num_devices, clients_per_round, num_rounds, beta0)
        check_settings(max_update_ratio, min_norm, aggregate, trim_fraction)
        self.aggregate = aggregate
        self.trim_fraction = float(trim_fraction)
        self.counters = StrategyCounters()
        # The reply check and quarantine every round mode shares (server/replies.py); the
        # asynchronous runs of server/async_rounds.py take it from here too.
        self.guard = ReplyGuard(
            max_update_ratio, min_norm, quarantine_after, on_quarantine, self.counters
        )
        self.quarantine = self.guard.quarantine
        self.plan = plan
        self.num_devices = int(num_devices)
        self.clients_per_round = int(clients_per_round)
        self.seed = int(seed)
        self.num_rounds = int(num_rounds)
        self.beta0 = float(beta0)
        self.sampler: DeviceSampler = sampler or SeededSampler(self.num_devices, self.seed)
        self.min_available_nodes = int(min_available_nodes)
        self.node_wait_s = float(node_wait_s)
        self.arrayrecord_key = arrayrecord_key
        self.configrecord_key = configrecord_key
        self.metricrecord_key = metricrecord_key
        self._theta: np.ndarray | None = None
        self._node_ids: list[int] = []
        self._last_arrays: ArrayRecord | None = None
        self._last_theta: np.ndarray | None = None
        self._sent: list[tuple[Message, int]] = []
        # Reassignment (server/reassign.py): this round's busy devices and substitutes.
        self._round_now = 0
        self._busy: set[int] = set()
        self._moved: dict[str, int] = {}
        self._moving = threading.Lock()
        # Crash and resume (server/checkpoint.py): rounds already done, and a hook called
        # with (round, theta) after each round's aggregation.
        self.round_offset = 0
        self.on_round_end: Callable[[int, np.ndarray], None] | None = None

    # -- Flower hooks ------------------------------------------------------------------
    def summary(self) -> None:
        LOG.info(
            "%s: %d devices, %d per round, plan %s, beta0 %s",
            self.name,
            self.num_devices,
            self.clients_per_round,
            self.plan,
            self.beta0,
        )

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round += self.round_offset  # a resumed run continues its numbering
        # Flower hands back the ArrayRecord aggregate_train returned: reuse its vector
        # instead of deserialising it again.
        if arrays is self._last_arrays and self._last_theta is not None:
            self._theta = self._last_theta
        else:
            self._theta = model_vector(arrays)
        devices = self.quarantine.select(self.sampler, server_round, self.clients_per_round)
        nodes = self._nodes(grid)
        messages = []
        for device in devices:
            entries = {
                **dict(config),
                **self.plan.to_config(),
                KEY_ROUND: int(server_round),
                KEY_DEVICE_INDEX: int(device),
                KEY_SEED: self.seed,
            }
            content = RecordDict(
                {self.arrayrecord_key: arrays, self.configrecord_key: ConfigRecord(entries)}
            )
            messages.append(
                Message(
                    content,
                    dst_node_id=nodes[int(device) % len(nodes)],
                    message_type=MessageType.TRAIN,
                    group_id=str(server_round),
                )
            )
        self.counters.bytes_down_total += len(messages) * int(self._theta.nbytes)
        self._sent = list(zip(messages, [int(d) for d in devices], strict=True))
        with self._moving:
            self._round_now, self._busy, self._moved = server_round, set(devices), {}
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.round_offset
        theta = self._theta
        if theta is None:
            raise RuntimeError("aggregate_train called before configure_train")
        accepted: list[tuple[np.ndarray, dict[str, float], RecordDict]] = []
        rejected = 0
        sent = {m.metadata.message_id: d for m, d in self._sent if m.metadata.message_id}
        seen: set[int] = set()
        for reply in replies:
            checked = self._check_reply(reply, theta, server_round)
            device = reply_device(reply, self._moved, sent, checked)
            if isinstance(checked, tuple) and device >= 0 and device in seen:
                self.counters.duplicate_replies += 1
                continue  # at-least-once delivery: never apply a device's update twice
            if checked is None or isinstance(checked, str):
                rejected += 1
                if isinstance(checked, str):  # refused content counts against the device
                    self.guard.refuse(device, server_round, checked)
            else:
                seen.add(device)
                accepted.append(checked)
        # Replies arrive in transport order; sort by device so float sums are reproducible.
        accepted.sort(key=lambda item: item[1].get(METRIC_DEVICE_INDEX, -1.0))
        self.counters.rounds += 1
        self.counters.rejected_replies += rejected
        self.counters.accepted_replies += len(accepted)
        new_arrays: ArrayRecord | None = None
        current = theta
        if accepted:
            for phi, metrics, _ in accepted:
                self.counters.grad_evals_total += int(metrics.get(METRIC_GRAD_EVALS, 0))
                self.counters.bytes_up_total += int(metrics.get(METRIC_BYTES_UP, phi.nbytes))
                self.counters.bytes_down_reported_total += int(metrics.get(METRIC_BYTES_DOWN, 0))
            new_theta = self.update(server_round, theta, accepted)
            new_arrays = vector_record(new_theta)
            self._last_arrays, self._last_theta = new_arrays, new_theta
            current = new_theta
        if self.on_round_end is not None:
            self.on_round_end(server_round, current)
        losses = [m.get(METRIC_LOSS, float("nan")) for _, m, _ in accepted]
        summary = MetricRecord(
            {
                "accepted": len(accepted),
                "rejected": rejected,
                "train-loss": float(np.mean(losses)) if losses else float("nan"),
            }
        )
        return new_arrays, summary

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        # Evaluation is few-shot adaptation on held-out devices, done through Flower's
        # ``evaluate_fn`` hook of ``start()``; training devices are not asked to evaluate.
        return []

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return None

    # -- to be filled by each algorithm --------------------------------------------------
    def update(
        self,
        server_round: int,
        theta: np.ndarray,
        accepted: list[tuple[np.ndarray, dict[str, float], RecordDict]],
    ) -> np.ndarray:
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------
    def beta(self, server_round: int) -> float:
        return annealed_beta(self.beta0, server_round, self.num_rounds)

    def _nodes(self, grid: Grid) -> list[int]:
        if len(self._node_ids) < self.min_available_nodes or not self._node_ids:
            deadline = time.monotonic() + self.node_wait_s
            while True:
                # Node ids are uint64: keep them as Python ints, sorted for a stable map.
                self._node_ids = sorted(int(n) for n in grid.get_node_ids())
                if self._node_ids and len(self._node_ids) >= self.min_available_nodes:
                    break
                if time.monotonic() > deadline:
                    raise UsageError(
                        f"only {len(self._node_ids)} nodes registered within "
                        f"{self.node_wait_s:.0f} s; need {self.min_available_nodes}"
                    )
                time.sleep(0.05)
        return self._node_ids

    def substitute(self, message_id: str, unavailable: Callable[[int], bool]) -> int | None:
        """A device to take over this round's task ``message_id`` (server/reassign.py):
        the first of the round's seeded draw order that is not busy in this round, not
        quarantined and not ``unavailable``; None if there is none. Thread-safe."""
        with self._moving:
            order = self.sampler.select(self._round_now, self.num_devices)
            for device in (int(d) for d in order):
                if device in self._busy or device in self.quarantine.quarantined:
                    continue
                if unavailable(device):
                    continue
                self._busy.add(device)
                self._moved[message_id] = device
                self.counters.reassigned_tasks += 1
                return device
        return None

    def _check_reply(
        self, reply: Message, theta: np.ndarray, server_round: int
    ) -> tuple[np.ndarray, dict[str, float], RecordDict] | str | None:
        """The accepted ``(phi, metrics, content)``; a reason string if the content is
        refused (here or by the MQTT gateway); None for a transport or device failure."""
        source = reply.metadata.src_node_id
        if reply.has_error():
            LOG.warning("round reply from node %s rejected: error %s", source, reply.error.reason)
            return refused_by_relay(reply)
        problem, checked = self._parse_reply(reply, theta, server_round)
        if problem is not None:
            LOG.warning("round reply from node %s rejected: %s", source, problem)
            return problem
        return checked

    def _parse_reply(
        self, reply: Message, theta: np.ndarray, server_round: int
    ) -> tuple[str | None, tuple[np.ndarray, dict[str, float], RecordDict] | None]:
        return self.guard.check(
            reply.content,
            theta,
            server_round,
            delta=self.plan.upload == "delta",
            arrays_key=self.arrayrecord_key,
            metrics_key=self.metricrecord_key,
        )

    @property
    def max_update_ratio(self) -> float | None:
        """The update bound of :attr:`guard` (None: none)."""
        return self.guard.max_update_ratio

    @property
    def min_norm(self) -> float:
        return self.guard.min_norm

    def combine(self, vectors: list[np.ndarray]) -> np.ndarray:
        """The round's aggregate of the accepted ``phi``: mean, median or trimmed mean."""
        if self.aggregate == "mean" or len(vectors) < 3:
            return plain_mean(vectors)
        return robust_mean(vectors, self.aggregate, self.trim_fraction)


class Reptile(FleetStrategy):
    """M devices per round, E epochs over a stored support set, outer step on mean phi."""

    name = "reptile"

    def update(
        self,
        server_round: int,
        theta: np.ndarray,
        accepted: list[tuple[np.ndarray, dict[str, float], RecordDict]],
    ) -> np.ndarray:
        return outer_step(theta, self.combine([a[0] for a in accepted]), self.beta(server_round))


class TinyReptile(Reptile):
    """ONE device per round, k online SGD steps, annealed outer step (TinyReptile).

    The server side is Reptile's outer step on the (single) device's phi; what differs is
    one device per round and the device's plan (online, each sample seen once).
    """

    name = "tinyreptile"

    def __init__(self, plan: RoundPlan, **kwargs: object) -> None:
        kwargs.setdefault("clients_per_round", 1)
        super().__init__(plan, **kwargs)  # type: ignore[arg-type]


class FedAvg(FleetStrategy):
    """Weighted average of the device models (weights: num-examples); no meta step.

    The average is Flower's own ``aggregate_arrayrecords`` (what ``flwr``'s FedAvg does).
    """

    name = "fedavg"

    def update(
        self,
        server_round: int,
        theta: np.ndarray,
        accepted: list[tuple[np.ndarray, dict[str, float], RecordDict]],
    ) -> np.ndarray:
        if self.aggregate != "mean" and len(accepted) >= 3:
            return self.combine([a[0] for a in accepted])
        records = []
        for phi, metrics, _ in accepted:
            weight = max(float(metrics.get(METRIC_NUM_EXAMPLES, 1.0)), 1e-12)
            records.append(
                RecordDict(
                    {
                        "arrays": ArrayRecord([phi]),
                        "metrics": MetricRecord({METRIC_NUM_EXAMPLES: weight}),
                    }
                )
            )
        averaged = aggregate_arrayrecords(records, METRIC_NUM_EXAMPLES)
        return np.asarray(averaged.to_numpy_ndarrays()[0], dtype=np.float32)


#: TinyMetaFed (``server/tinymetafed.py``) adds itself when imported.
STRATEGIES: dict[str, type[FleetStrategy]] = {
    TinyReptile.name: TinyReptile,
    Reptile.name: Reptile,
    FedAvg.name: FedAvg,
}
