"""A device that sleeps: an :class:`~tinyfleet.device.mqtt_client.MqttDevice` awake for
``window`` seconds every ``period`` seconds, in real time (a thread).

While asleep it holds no connection; its persistent MQTT session (``session_expiry_s``)
keeps its task subscription, so tasks sent meanwhile wait at the broker (QoS 1, until
their message expiry) and arrive when it wakes. Before sleeping it announces ``asleep``
with the wall-clock time of its next wake, which a next-to-wake scheduler reads
(:mod:`tinyfleet.server.mqtt_async`). The simulated-clock version of the same fleet is
:mod:`tinyfleet.server.async_rounds`.
"""

from __future__ import annotations

import logging
import threading
import time

from tinyfleet.device.mqtt_client import MqttDevice
from tinyfleet.errors import TinyfleetError, UsageError

LOG = logging.getLogger(__name__)


class DutyCycledDevice:
    """Wake ``device`` at ``phase + n * period`` s (from :meth:`start`) for ``window`` s;
    a device with ``tasks_per_wake`` goes back to sleep as soon as it answered them."""

    def __init__(
        self,
        device: MqttDevice,
        period: float,
        window: float,
        phase: float = 0.0,
    ) -> None:
        if not (period > 0 and 0 < window <= period and 0 <= phase < period):
            raise UsageError(
                f"duty cycle needs 0 < window <= period and 0 <= phase < period, got "
                f"period {period}, window {window}, phase {phase}"
            )
        self.device = device
        self.period, self.window, self.phase = float(period), float(window), float(phase)
        self.wakes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self, wait: float = 10.0) -> DutyCycledDevice:
        """Connect once (creating the session and its subscription), then cycle."""
        self._t0 = time.monotonic()
        self.device.start(wait)
        if self.phase > 0:
            self.device.sleep(self._wall(self.phase))
        self._thread = threading.Thread(
            target=self._run, name=f"duty-{self.device.settings.device_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        self.device.stop()

    def _stay_awake(self, until: float) -> bool:
        """Awake until ``until`` (monotonic), or until the device has answered its
        ``tasks_per_wake`` (a device sleeps as soon as its work is done); True: stop."""
        while (left := until - time.monotonic()) > 0:
            if self.device.work_done.wait(min(left, 0.05)):
                return self._stop.is_set()
            if self._stop.is_set():
                return True
        return False

    def _wall(self, offset: float) -> float:
        """Wall-clock time of ``offset`` s after start (what other machines understand)."""
        return time.time() + (self._t0 + offset - time.monotonic())

    def _run(self) -> None:
        cycle = 0
        awake = self.phase == 0
        while not self._stop.is_set():
            wake_at = self.phase + cycle * self.period
            if not awake:
                if self._stop.wait(max(0.0, self._t0 + wake_at - time.monotonic())):
                    return
                try:
                    self.device.wake()
                except TinyfleetError as error:  # broker away: try again next cycle
                    LOG.warning("%s", error)
                    cycle += 1
                    continue
            awake = False
            self.wakes += 1
            if self._stay_awake(self._t0 + wake_at + self.window):
                return
            cycle += 1
            self.device.sleep(self._wall(self.phase + cycle * self.period))
