"""Which devices take part in a round.

A sampler maps ``(server_round, count)`` to device indices. :class:`SeededSampler` draws
uniformly without replacement from a stream seeded by ``(run seed, round)``, so the
choice does not depend on how many rounds ran before in this process (restarts, other
transports). Pass ``eligible`` to restrict the pool (e.g. a knowledge-graph query for
devices that can run the model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from tinyfleet.errors import UsageError

SAMPLER_TAG = 0x53414D50  # "SAMP"


class DeviceSampler(Protocol):
    """Chooses the device indices that train in a round."""

    def select(self, server_round: int, count: int) -> list[int]: ...


class SeededSampler:
    """Uniform sampling without replacement, seeded by ``(seed, server_round)``.

    Parameters
    ----------
    num_devices
        Size of the fleet; devices are ``0 .. num_devices - 1``.
    seed
        The run seed.
    eligible
        Optional ``eligible(server_round) -> device indices`` that restricts the pool.
    """

    def __init__(
        self,
        num_devices: int,
        seed: int,
        eligible: Callable[[int], Sequence[int]] | None = None,
    ) -> None:
        if int(num_devices) < 1:
            raise UsageError(f"the fleet needs >= 1 device, got {num_devices}")
        if int(seed) < 0:
            raise UsageError(f"seed must be >= 0, got {seed}")
        self.num_devices = int(num_devices)
        self.seed = int(seed)
        self.eligible = eligible

    def select(self, server_round: int, count: int) -> list[int]:
        pool = (
            list(range(self.num_devices))
            if self.eligible is None
            else sorted({int(i) for i in self.eligible(server_round)})
        )
        if not pool:
            return []
        rng = np.random.default_rng([SAMPLER_TAG, self.seed, int(server_round)])
        picks = rng.choice(len(pool), size=min(int(count), len(pool)), replace=False)
        return [pool[int(i)] for i in picks]
