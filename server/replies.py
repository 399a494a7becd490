"""The content checks every training reply passes before it may touch the model, in
synchronous rounds (the strategies) and asynchronous ones (server/async_rounds.py,
server/mqtt_async.py) alike, and what a refusal costs the device that sent it.

:func:`parse_train_reply` reads a reply and refuses a malformed one (not one parameter
array, a garbled payload, the wrong shape, NaN/Inf, a stale round); :class:`ReplyGuard`
adds the update-norm bound (server/robust.py) against the theta the task was computed
from, counts what it refuses, and quarantines a device after ``quarantine_after``
refusals (server/quarantine.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict

from tinyfleet.device.wire.contract import METRIC_DEVICE_INDEX, METRIC_ROUND
from tinyfleet.errors import UsageError
from tinyfleet.server.counters import StrategyCounters
from tinyfleet.server.quarantine import DEFAULT_QUARANTINE_AFTER, Quarantine
from tinyfleet.server.records import ARRAYS_KEY, METRICS_KEY, single_vector
from tinyfleet.server.robust import (
    DEFAULT_MAX_UPDATE_RATIO,
    DEFAULT_MIN_NORM,
    check_bound,
    update_ratio,
)
from tinyfleet.server.validation import update_problem

CheckedReply = tuple[np.ndarray, dict[str, float], RecordDict]
#: Flower Error code of a reply whose content a relay (the MQTT gateway) refused before it
#: became a Message (wrong arrays, NaN/Inf): a refusal held against the device.
ERROR_CODE_REFUSED = 104


def parse_train_reply(
    content: RecordDict,
    theta: np.ndarray,
    server_round: int | None,
    arrays_key: str,
    metrics_key: str,
) -> tuple[str | None, CheckedReply | None]:
    """``(None, (phi, metrics, content))`` for a well-formed reply to ``server_round``,
    else ``(reason, None)``: not one parameter array, a garbled payload, the wrong shape,
    NaN/Inf (server/validation.py) or a stale round (``server_round`` None: not checked).
    The update bound is :meth:`ReplyGuard.check`'s."""
    try:
        record = content[arrays_key]
        metrics = dict(content[metrics_key]) if metrics_key in content else {}
    except (KeyError, AttributeError, TypeError, ValueError) as error:
        return str(error) or type(error).__name__, None
    if not isinstance(record, ArrayRecord) or len(record) != 1:
        return "not one parameter array", None
    try:
        phi = single_vector(record)
    except (TypeError, ValueError, UsageError) as error:  # not a numpy payload, garbled
        return str(error) or type(error).__name__, None
    problem = update_problem(phi, theta.shape)
    if problem is not None:
        return problem, None
    clean = {str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    if server_round is not None and clean.get(METRIC_ROUND, server_round) != server_round:
        return f"stale round {clean[METRIC_ROUND]}", None
    return None, (phi, clean, content)


class ReplyGuard:
    """The one reply check of every round mode: content, update bound, refusals counted.

    Parameters
    ----------
    max_update_ratio, min_norm
        Refuse a reply whose update exceeds ``max_update_ratio * max(||theta||,
        min_norm)`` (``theta``: the model the task was computed from; None: no bound).
    quarantine_after
        Refused replies after which a device gets no more tasks (None: never).
    on_quarantine
        ``on_quarantine(device, round, reason)`` when a device is quarantined.
    counters
        Where refusals are counted (a strategy passes its own; default: new ones).
    """

    def __init__(
        self,
        max_update_ratio: float | None = DEFAULT_MAX_UPDATE_RATIO,
        min_norm: float = DEFAULT_MIN_NORM,
        quarantine_after: int | None = DEFAULT_QUARANTINE_AFTER,
        on_quarantine: Callable[[int, int, str], None] | None = None,
        counters: StrategyCounters | None = None,
    ) -> None:
        check_bound(max_update_ratio, min_norm)
        self.max_update_ratio = None if max_update_ratio is None else float(max_update_ratio)
        self.min_norm = float(min_norm)
        self.quarantine = Quarantine(quarantine_after, on_quarantine)
        self.counters = StrategyCounters() if counters is None else counters

    def check(
        self,
        content: RecordDict,
        theta: np.ndarray,
        server_round: int,
        *,
        delta: bool = False,
        arrays_key: str = ARRAYS_KEY,
        metrics_key: str = METRICS_KEY,
    ) -> tuple[str | None, CheckedReply | None]:
        """:func:`parse_train_reply`, then the update bound: ``(reason, None)`` if refused.

        ``theta`` is the model the task carried; ``server_round`` the round (or async task
        number) it carried; ``delta``: the reply is the update itself (an ``upload =
        "delta"`` plan, TinyMetaFed), not the device's parameters.
        """
        problem, checked = parse_train_reply(content, theta, server_round, arrays_key, metrics_key)
        if checked is None or self.max_update_ratio is None:
            return problem, checked
        ratio = update_ratio(checked[0], theta, self.min_norm, delta=delta)
        if ratio > self.max_update_ratio:
            self.counters.bounded_replies += 1
            return f"update norm {ratio:.3g} x model norm > {self.max_update_ratio}", None
        self.counters.max_update_ratio = max(self.counters.max_update_ratio, ratio)
        return None, checked

    def refuse(self, device: int, server_round: int, reason: str) -> bool:
        """Count a refused reply's content against ``device`` (transport errors are not
        refusals); True if this quarantines it."""
        by_device = self.counters.rejected_by_device
        by_device[device] = by_device.get(device, 0) + 1
        return self.quarantine.reject(device, server_round, reason)

    def quarantined(self, device: int) -> bool:
        """True while ``device`` may not be given tasks."""
        return int(device) in self.quarantine.quarantined


def refused_by_relay(reply: Message) -> str | None:
    """The reason of an error reply whose content the relay refused (held against the
    device like any refused content), else None (a transport or device failure)."""
    if reply.has_error() and reply.error.code == ERROR_CODE_REFUSED:
        return f"refused by the relay: {reply.error.reason}"
    return None


def reply_device(
    reply: Message, moved: dict[str, int], sent: dict[str, int], checked: object
) -> int:
    """The device a reply answers: the substitute its task was reassigned to
    (server/reassign.py), else its message's device, else its metrics' (or -1)."""
    message_id = reply.metadata.reply_to_message_id
    device = moved.get(message_id, sent.get(message_id))
    if device is not None:
        return device
    if isinstance(checked, tuple):
        return int(checked[1].get(METRIC_DEVICE_INDEX, -1))
    return -1
