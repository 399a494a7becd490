"""No lost rounds: give a task whose device stays away to another eligible device.

The MQTT gateway already waits ``offline_wait`` seconds for a device that is offline or
drops mid-round, and re-sends the same task when it returns (server/gateway.py). When
that wait (or the reply timeout) runs out, :class:`ReassigningCall` hands the round's
task to a substitute, up to ``limit`` times per task:

* the substitute is the first device of the round's seeded draw order
  (``sampler.select(round, fleet size)``: the same seeded stream that picked the round's
  devices, so eligibility from the knowledge graph applies too) that is not busy in this
  round (already given a task, including the devices that failed), not quarantined and
  not offline; so two runs with the same failures pick the same substitutes and end
  with the same parameters;
* the substitute trains on its own data for that round (a device's data derives from
  ``(seed, device, round)``), and the strategy attributes the reply to it (refusals,
  duplicates, quarantine), never to the absent device;
* a device whose wait ran out once is not waited for again while it stays offline: its
  next tasks go to substitutes at once (a device gone for good costs one wait, not one
  per round it is drawn in); it is waited for again once it is back online;
* only transport failures are reassigned (device offline past the wait, no reply within
  the timeout); a device's error reply or a refused update is not, so a liar cannot
  shift work onto others.

With ``limit`` 0 (the default of ``tinyfleet server run``) nothing changes: a failed task
is a failed reply, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flwr.app import ConfigRecord, Error, Message, RecordDict

from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND
from tinyfleet.errors import UsageError
from tinyfleet.server.gateway_flower import ERROR_CODE_OFFLINE, ERROR_CODE_TIMEOUT
from tinyfleet.server.records import CONFIG_KEY
from tinyfleet.server.strategies import FleetStrategy

LOG = logging.getLogger(__name__)

#: Flower error codes of relays that failed for want of the device.
REASSIGNABLE = frozenset({ERROR_CODE_OFFLINE, ERROR_CODE_TIMEOUT})

ClientCall = Callable[[Message], Message]


class ReassigningCall:
    """A client call that retries a failed task on substitute devices.

    Parameters
    ----------
    call
        The relay (e.g. ``RecordingCall(GatewayClientCall(...))``).
    strategy
        The running strategy: it knows the round's draw, busy and quarantined devices,
        and counts the reassignments.
    available
        ``available(device_index)``: whether the device is online now (the gateway's
        retained status).
    limit
        Substitutes tried per task (>= 0).
    """

    def __init__(
        self,
        call: ClientCall,
        strategy: FleetStrategy,
        available: Callable[[int], bool],
        limit: int,
    ) -> None:
        if int(limit) < 0:
            raise UsageError(f"--reassign must be >= 0, got {limit}")
        self.call = call
        self.strategy = strategy
        self.available = available
        self.limit = int(limit)
        self._gone: set[int] = set()  # devices whose wait ran out, not back since
        self._lock = threading.Lock()

    def __call__(self, message: Message) -> Message:
        config = dict(message.content.config_records[CONFIG_KEY])
        device = int(config[KEY_DEVICE_INDEX])  # type: ignore[arg-type]
        reply = self._relay(message, device)
        tries = 0
        while tries < self.limit and reply.has_error() and reply.error.code in REASSIGNABLE:
            absent = int(config[KEY_DEVICE_INDEX])  # type: ignore[arg-type]
            substitute = self.strategy.substitute(
                message.metadata.message_id, lambda d: not self.available(d)
            )
            if substitute is None:
                LOG.warning("round %s: no device left to take over from device %d",
                            config.get(KEY_ROUND), absent)  # fmt: skip
                break
            tries += 1
            LOG.warning("round %s: device %d away (%s); task reassigned to device %d",
                        config.get(KEY_ROUND), absent, reply.error.reason, substitute)  # fmt: skip
            config[KEY_DEVICE_INDEX] = int(substitute)
            content = RecordDict(
                {
                    **{k: v for k, v in message.content.array_records.items()},
                    CONFIG_KEY: ConfigRecord(config),  # type: ignore[arg-type]
                }
            )
            moved = Message(
                content,
                dst_node_id=message.metadata.dst_node_id,
                message_type=message.metadata.message_type,
                group_id=message.metadata.group_id,
            )
            answer = self._relay(moved, int(substitute))
            # Reply to the original message: the strategy maps it to the substitute.
            reply = Message(
                answer.error if answer.has_error() else answer.content, reply_to=message
            )
        return reply

    def _relay(self, message: Message, device: int) -> Message:
        """Relay ``message``, or fail it at once if ``device`` is gone (see module doc)."""
        with self._lock:
            gone = self.limit > 0 and device in self._gone
            if gone and self.available(device):
                self._gone.discard(device)
                gone = False
        if gone:
            error = Error(code=ERROR_CODE_OFFLINE, reason=f"device {device} is still offline")
            return Message(error, reply_to=message)
        reply = self.call(message)
        if reply.has_error() and reply.error.code == ERROR_CODE_OFFLINE:
            with self._lock:
                self._gone.add(device)
        return reply
