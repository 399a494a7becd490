"""Tasks a caller does not wait on one at a time: a fleet-wide round from one thread
(:meth:`BatchedTasks.request_many`), tasks for devices that sleep
(:meth:`BatchedTasks.submit` / :meth:`BatchedTasks.poll`) and their statuses
(:meth:`BatchedTasks.statuses`). Part of
:class:`~tinyfleet.server.gateway.MqttGateway`, on its task bookkeeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tinyfleet.device.wire import FieldValue, MessageType, WireArray, WireMessage
from tinyfleet.server.gateway_errors import GatewayError, GatewayTimeout
from tinyfleet.server.gateway_settings import GatewayCounters, GatewaySettings, PendingTask


class BatchedTasks:
    """Mixed into :class:`~tinyfleet.server.gateway.MqttGateway`."""

    if TYPE_CHECKING:  # provided by MqttGateway
        settings: GatewaySettings
        counters: GatewayCounters
        status: dict[str, dict[str, Any]]
        _lock: threading.Lock
        _pending: dict[int, PendingTask]
        _replied: threading.Condition

        def _open(
            self,
            device_id: str,
            round: int,
            fields: Mapping[str, FieldValue],
            arrays: Sequence[WireArray],
            msg_type: MessageType,
        ) -> tuple[str, PendingTask]: ...

        def _register(
            self,
            device_id: str,
            round: int,
            fields: Mapping[str, FieldValue],
            arrays: Sequence[WireArray],
            msg_type: MessageType,
        ) -> tuple[str, PendingTask]: ...

        def _publish(self, topic: str, pending: PendingTask) -> None: ...

        def _wait(self, topic: str, pending: PendingTask, timeout: float) -> WireMessage: ...

        def _forget(self, msg_id: int) -> None: ...

        def _validate(
            self, pending: PendingTask, reply: WireMessage, locked: bool = False
        ) -> WireMessage: ...

    def statuses(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """The latest status document of each of ``device_ids`` (None: never seen), read
        under the lock the network thread writes them with. A new status replaces the
        document, so ``is`` tells whether a device said anything since an earlier read;
        treat the documents as read-only."""
        with self._lock:
            return {d: self.status.get(d) for d in device_ids}

    def request_many(
        self,
        tasks: Sequence[tuple[str, int, Mapping[str, FieldValue], Sequence[WireArray]]],
        *,
        msg_type: MessageType = MessageType.TRAIN,
        timeout: float | None = None,
        window: int = 64,
    ) -> list[WireMessage | GatewayError]:
        """Send every ``(device_id, round, fields, arrays)`` task, ``window`` at a time,
        and wait for their replies; one result per task, in order: the validated REPLY or
        the :class:`GatewayError` that :meth:`request` would have raised.

        A fleet-wide round from one thread, without a thread per waiting task. The
        window matters: with all 1,000 tasks of a round in flight at once, simulated
        devices sharing a process all train at the same time and their threads thrash
        (docs/performance.md). Each task's timeout counts from when its wait starts, so
        a task never gets less time than :meth:`request` gives it.
        """
        timeout = float(timeout or self.settings.round_timeout)
        window = max(1, int(window))
        opened: list[tuple[str, PendingTask]] = []
        results: list[WireMessage | GatewayError] = []
        try:
            for index in range(len(tasks)):
                # Keep ``window`` tasks in flight: open the next as each one is answered.
                while len(opened) < min(len(tasks), index + window):
                    device_id, round_, fields, arrays = tasks[len(opened)]
                    opened.append(self._open(device_id, round_, fields, arrays, msg_type))
                topic, pending = opened[index]
                try:
                    results.append(self._wait(topic, pending, timeout))
                except GatewayError as error:
                    results.append(error)
                finally:
                    self._forget(pending.msg_id)
        finally:
            for _, pending in opened[len(results) :]:
                self._forget(pending.msg_id)
        return results

    def submit(
        self,
        device_id: str,
        *,
        round: int,
        fields: Mapping[str, FieldValue],
        arrays: Sequence[WireArray],
        msg_type: MessageType = MessageType.TRAIN,
    ) -> int:
        """Send one task and return its ``msg_id`` at once; :meth:`poll` collects it.

        For a device that sleeps: the task (QoS 1, with ``task_expiry_s`` as its message
        expiry) waits at the broker in the device's persistent session until it wakes.
        The gateway does not re-send it (the session holds it); it expires after
        ``task_expiry_s`` (else after ``round_timeout``).
        """
        topic, pending = self._register(device_id, round, fields, arrays, msg_type)
        pending.expires_at = time.monotonic() + float(
            self.settings.task_expiry_s or self.settings.round_timeout
        )
        self._publish(topic, pending)
        return pending.msg_id

    def poll(self, msg_ids: Iterable[int], timeout: float) -> dict[int, WireMessage | GatewayError]:
        """Wait up to ``timeout`` s until one of ``msg_ids`` (from :meth:`submit`) is
        finished; return every finished one: its validated REPLY, or the error
        (:class:`GatewayTimeout` when it expired, :class:`DeviceReportedError`,
        :class:`InvalidReplyError`). A finished task is forgotten: a reply that comes
        later (a late or repeated one) is dropped and counted as a duplicate."""
        wanted = list(msg_ids)
        deadline = time.monotonic() + timeout
        done: dict[int, WireMessage | GatewayError] = {}
        with self._replied:
            while True:
                now = time.monotonic()
                for msg_id in wanted:
                    p = self._pending.get(msg_id)
                    if p is None:
                        done[msg_id] = GatewayError(f"task {msg_id} is not open")
                    elif p.reply is not None:
                        try:
                            done[msg_id] = self._validate(p, p.reply, locked=True)
                        except GatewayError as error:
                            done[msg_id] = error
                    elif p.expires_at is not None and now >= p.expires_at:
                        self.counters.timeouts += 1
                        done[msg_id] = GatewayTimeout(
                            f"task for {p.device_id} (round {p.round}) expired unanswered"
                        )
                if done or now >= deadline:
                    break
                expiries = [
                    p.expires_at
                    for m in wanted
                    if (p := self._pending.get(m)) is not None and p.expires_at is not None
                ]
                self._replied.wait(max(0.0, min([deadline, *expiries]) - now))
        for msg_id in done:
            self._forget(msg_id)
        return done
