"""The content checks every training reply passes before a strategy may use it."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict

from tinyfleet.device.wire.contract import METRIC_DEVICE_INDEX, METRIC_ROUND
from tinyfleet.errors import UsageError
from tinyfleet.server.records import single_vector
from tinyfleet.server.validation import update_problem

CheckedReply = tuple[np.ndarray, dict[str, float], RecordDict]


def parse_train_reply(
    content: RecordDict, theta: np.ndarray, server_round: int, arrays_key: str, metrics_key: str
) -> tuple[str | None, CheckedReply | None]:
    """``(None, (phi, metrics, content))`` for a well-formed reply to ``server_round``,
    else ``(reason, None)``: not one parameter array, a garbled payload, the wrong shape,
    NaN/Inf (server/validation.py) or a stale round. The update bound is the strategy's."""
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
    if clean.get(METRIC_ROUND, server_round) != server_round:
        return f"stale round {clean[METRIC_ROUND]}", None
    return None, (phi, clean, content)


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
