"""What a strategy run cost and refused, summed over rounds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StrategyCounters:
    """What a run cost, summed over rounds (read after ``start()``)."""

    rounds: int = 0
    accepted_replies: int = 0
    rejected_replies: int = 0
    grad_evals_total: int = 0
    bytes_down_total: int = 0
    bytes_up_total: int = 0
    #: Sum of the replies' ``bytes-down`` (the encoded task's size as the device saw it).
    bytes_down_reported_total: int = 0
    bounded_replies: int = 0  # refused by the update-norm bound (part of rejected_replies)
    reassigned_tasks: int = 0  # tasks given to a substitute device (server/reassign.py)
    duplicate_replies: int = 0  # a second reply for a device in one round (ignored)
    max_update_ratio: float = 0.0  # largest ||phi - theta|| / ||theta|| accepted
    rejected_by_device: dict[int, int] = field(default_factory=dict)
