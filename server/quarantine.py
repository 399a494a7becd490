"""Per-device rejection counts and quarantine.

A reply whose content is refused (malformed, non-finite, wrong shape, stale, or over the
update bound) counts against the device that sent it; transport errors (timeouts, an
offline device) do not. After ``quarantine_after`` refusals the device is quarantined:
the strategy's sampler no longer picks it until an operator calls :meth:`clear`.

Selection stays deterministic: with nothing quarantined the sampler is asked exactly as
before (same devices, same hashes); otherwise it is asked for ``count + len(quarantined)``
devices of the same seeded draw and the first ``count`` that are not quarantined are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from tinyfleet.errors import UsageError
from tinyfleet.server.sampling import DeviceSampler

LOG = logging.getLogger(__name__)
DEFAULT_QUARANTINE_AFTER = 3


class Quarantine:
    """Counts refused replies per device and keeps the quarantined set.

    Parameters
    ----------
    after
        Refusals that quarantine a device; None never quarantines.
    on_quarantine
        Called with ``(device_index, server_round, reason)`` when a device is quarantined
        (e.g. to record it in the knowledge graph).
    """

    def __init__(
        self,
        after: int | None = DEFAULT_QUARANTINE_AFTER,
        on_quarantine: Callable[[int, int, str], None] | None = None,
    ) -> None:
        if after is not None and int(after) < 1:
            raise UsageError(f"quarantine_after must be >= 1 or None, got {after}")
        self.after = None if after is None else int(after)
        self.on_quarantine = on_quarantine
        self.rejections: dict[int, int] = {}
        self.quarantined: dict[int, int] = {}  # device -> round it was quarantined in
        self.reasons: dict[int, str] = {}  # device -> its last refusal's reason

    def reject(self, device: int, server_round: int, reason: str) -> bool:
        """Count one refusal; return True if this quarantines the device."""
        if device < 0:
            return False
        count = self.rejections[device] = self.rejections.get(device, 0) + 1
        if self.after is None or count < self.after or device in self.quarantined:
            return False
        self.quarantined[device] = int(server_round)
        self.reasons[device] = str(reason)
        LOG.warning(
            "device %d quarantined in round %d after %d refused replies (last: %s)",
            device,
            server_round,
            count,
            reason,
        )
        if self.on_quarantine is not None:
            self.on_quarantine(device, int(server_round), reason)
        return True

    def clear(self, device: int) -> None:
        """An operator lets ``device`` train again (its count starts from zero)."""
        self.quarantined.pop(int(device), None)
        self.reasons.pop(int(device), None)
        self.rejections.pop(int(device), None)

    def select(self, sampler: DeviceSampler, server_round: int, count: int) -> list[int]:
        """``count`` devices from ``sampler`` that are not quarantined (see module doc)."""
        if not self.quarantined:
            return sampler.select(server_round, count)
        picks = sampler.select(server_round, count + len(self.quarantined))
        return [d for d in picks if d not in self.quarantined][:count]

    def state(self) -> dict[str, dict[str, Any]]:
        """JSON-friendly state (checkpoints, reports)."""
        return {
            "rejections": {str(k): v for k, v in sorted(self.rejections.items())},
            "quarantined": {str(k): v for k, v in sorted(self.quarantined.items())},
            "reasons": {str(k): v for k, v in sorted(self.reasons.items())},
        }

    def load_state(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        self.rejections = {int(k): int(v) for k, v in state.get("rejections", {}).items()}
        self.quarantined = {int(k): int(v) for k, v in state.get("quarantined", {}).items()}
        self.reasons = {int(k): str(v) for k, v in state.get("reasons", {}).items()}
