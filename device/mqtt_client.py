"""The MQTT device client: a device's side of docs/protocol.md, with paho-mqtt 2.x.

A :class:`MqttDevice` connects with a Last Will (``{"state": "offline"}``, retained, on
its status topic), publishes its retained self-description and ``{"state": "online"}``,
subscribes to its task topic (QoS 1) and answers each TRAIN/EVALUATE task by calling its
*task handler* and publishing the REPLY (or an ERROR) on its update topic. paho
reconnects with exponential backoff; after a reconnect the device re-subscribes and
re-announces itself. Tasks are idempotent: a task whose ``msg_id`` was already answered
gets the cached reply again, it does not train twice.

:func:`round_task_handler` is the handler that runs the federated round work of
:mod:`tinyfleet.device.rounds` on the device's own data stream.

No Flower, no TensorFlow here: this is what a real device (or its serial bridge) runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from tinyfleet.device import wire
from tinyfleet.device.boards import BOARDS, MODEL_OPERATORS
from tinyfleet.device.head import HeadSpec
from tinyfleet.device.mqtt import (
    LastWill,
    connack_refusal,
    make_client,
    start_client,
    stop_client,
)
from tinyfleet.device.rounds import StreamForDevice, Trainer, encoded_bytes, run_reply_round
from tinyfleet.device.wire import FieldValue, MessageType, WireArray, WireMessage
from tinyfleet.device.wire.contract import ERROR_CODE_BAD_TASK, ERROR_CODE_FAILED
from tinyfleet.device.wire.types import pad4
from tinyfleet.errors import TinyfleetError, UsageError

LOG = logging.getLogger(__name__)

#: ``handler(task) -> (fields, arrays)`` of the REPLY; raise to send an ERROR instead.
TaskHandler = Callable[[WireMessage], tuple[Mapping[str, FieldValue], Sequence[WireArray]]]


def default_description(device_id: str, fleet: str = "default") -> dict[str, Any]:
    """A DEVICE DESCRIPTION (see /docs/protocol.md) for a simulated device on a host.

    It claims the reference board's budget (Nano 33 BLE Sense: 64 MHz, 256 KB RAM, 1 MB
    flash) and the TFLM operators our models use, so the knowledge graph's matchmaking
    treats it like that board; pass a description file to simulate another one.
    """
    return {
        "device_id": device_id,
        "fleet": fleet,
        "protocol_version": wire.PROTOCOL_VERSION,
        **BOARDS["simulated"].description_fields(),
        "firmware": {"name": "tinyfleet-py", "version": "0.1.0"},
        "operators": list(MODEL_OPERATORS),
    }


@dataclass(frozen=True)
class DeviceSettings:
    """How a device connects.

    ``max_payload``: replies larger than this are sent as CHUNKs; ``max_message_bytes``:
    the largest task it accepts; ``reply_cache``: how many answered tasks it remembers.
    ``session_expiry_s``: a device that sleeps (:meth:`MqttDevice.sleep`) connects with
    MQTT 5 and a persistent session kept that long, so tasks sent while it sleeps wait
    at the broker (QoS 1) until it wakes; None: MQTT 3.1.1, clean session.
    ``tasks_per_wake`` (with a session): answer at most that many tasks per wake; the rest
    stay unacknowledged at the broker for the next wake (:attr:`MqttDevice.work_done`
    is set when the quota is reached, so it can go back to sleep);
    ``update_qos``: MQTT QoS of its replies and of its task subscription (1 by default;
    0 leaves recovery of a lost message to the gateway's re-send).
    """

    device_id: str
    host: str = "127.0.0.1"
    port: int = 1883
    fleet: str = "default"
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    keepalive: int = 30
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0
    max_payload: int = 256 * 1024
    max_message_bytes: int = wire.DEFAULT_MAX_MESSAGE_BYTES
    reply_cache: int = 8
    description: Mapping[str, Any] | None = None
    session_expiry_s: int | None = None
    tasks_per_wake: int | None = None
    update_qos: int = 1

    def __post_init__(self) -> None:
        wire.topic(self.fleet, self.device_id, "task")  # validates both names
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise UsageError("reconnect delays must satisfy 0 < min <= max")
        smallest = min_payload(self.device_id)
        if int(self.max_payload) < smallest:
            raise UsageError(
                f"max payload {self.max_payload} is too small: device {self.device_id}'s "
                f"chunks need >= {smallest} bytes"
            )
        if int(self.keepalive) < 1 or int(self.max_message_bytes) < 1 or self.reply_cache < 1:
            raise UsageError("keepalive, max_message_bytes and reply_cache must be >= 1")
        if self.session_expiry_s is not None and int(self.session_expiry_s) < 1:
            raise UsageError(f"session expiry must be >= 1 s, got {self.session_expiry_s}")
        if self.tasks_per_wake is not None and (
            self.session_expiry_s is None or int(self.tasks_per_wake) < 1
        ):
            raise UsageError("tasks per wake must be >= 1 and needs a persistent session")
        if self.update_qos not in (0, 1):
            raise UsageError(f"update QoS must be 0 or 1, got {self.update_qos}")


def min_payload(device_id: str) -> int:
    """The smallest ``max_payload`` that can carry this device's chunks (64 data bytes)."""
    name = len(device_id.encode())
    return wire.HEADER_SIZE + name + pad4(name) + wire.CHUNK_PREFIX_SIZE + 64


@dataclass
class DeviceCounters:
    tasks: int = 0
    replies: int = 0
    repeated_tasks: int = 0
    bad_tasks: int = 0
    errors: int = 0
    connects: int = 0


class MqttDevice:
    """One device's MQTT session (a paho client with its own network thread)."""

    def __init__(self, settings: DeviceSettings, handler: TaskHandler) -> None:
        self.settings = settings
        self.handler = handler
        self.counters = DeviceCounters()
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._answered: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()
        limit = settings.max_message_bytes
        self._assembler = wire.ChunkAssembler(
            limit, max_pending=4, max_device_bytes=2 * limit, max_total_bytes=2 * limit
        )
        s = settings
        self.topics = {kind: wire.topic(s.fleet, s.device_id, kind) for kind in wire.TOPIC_KINDS}
        client = make_client(
            s.device_id,
            self.connected,
            username=s.username,
            password=s.password,
            tls_ca=s.tls_ca,
            will=LastWill(self.topics["status"], self._status("offline")),
            reconnect_min_s=s.reconnect_min_s,
            reconnect_max_s=s.reconnect_max_s,
            mqtt5=s.session_expiry_s is not None,
            manual_ack=s.tasks_per_wake is not None,
        )
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        self.last_round: int | None = None
        self.refused: str | None = None  # the broker's CONNACK reason, if it refused us
        self._unacked: list[mqtt.MQTTMessageInfo] = []  # replies not yet acknowledged
        self._tasks_this_wake = 0
        self.work_done = threading.Event()  # tasks_per_wake answered since the last wake

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, wait: float | None = 10.0) -> MqttDevice:
        """Connect in the background (paho's thread reconnects on its own)."""
        s = self.settings
        if not start_client(
            self.client, s.host, s.port, s.keepalive, self.connected, wait, s.session_expiry_s
        ):
            self.stop()
            raise TinyfleetError(self.connect_problem(wait or 0.0))
        return self

    def sleep(self, next_wake: float | None = None, timeout: float = 5.0) -> None:
        """Go to sleep: see the replies sent so far acknowledged, announce ``asleep``
        (retained, with ``next_wake``, the wall-clock time it means to wake, for a
        next-to-wake scheduler) and disconnect cleanly (no Last Will: asleep is not
        offline). The persistent session keeps the task subscription; tasks sent
        meanwhile wait at the broker until :meth:`wake`."""
        if self.settings.session_expiry_s is None:
            raise UsageError("a device that sleeps needs a persistent session (session_expiry_s)")
        while True:  # a task may arrive while we wait: its reply goes out before we sleep
            with self._lock:
                unacked, self._unacked = self._unacked, []
            if not unacked:
                break
            for info in unacked:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout)
        with self._lock:  # no task is answered between the status and the DISCONNECT
            self.work_done.set()  # (tasks_per_wake) one arriving now stays queued
            if self.connected.is_set():
                extra = {} if next_wake is None else {"next_wake": round(next_wake, 3)}
                status = self._status("asleep", **extra)
                self.client.publish(self.topics["status"], status, qos=1, retain=True)
            self.client.disconnect()
        # Outside the lock: the network thread may be waiting for it in _on_message.
        stop_client(self.client, self.connected)

    def wake(self, wait: float | None = 10.0) -> MqttDevice:
        """Reconnect after :meth:`sleep`: the session resumes and the broker delivers the
        tasks queued for it (the device answers them as always, once each)."""
        with self._lock:
            self._tasks_this_wake = 0
            self.work_done.clear()
        return self.start(wait)

    def connect_problem(self, waited: float) -> str:
        """One line: the broker refused the login (its reason), or none answered."""
        s = self.settings
        if self.refused is not None:
            return (
                f"device {s.device_id}: broker {s.host}:{s.port} refused the login "
                f"(user {s.username or '(none)'}): {self.refused}"
            )
        return f"device {s.device_id}: no broker at {s.host}:{s.port} within {waited:g} s"

    def stop(self, graceful: bool = True) -> None:
        """Leave: publish ``offline`` (graceful) and disconnect; disconnect() before
        loop_stop() avoids paho's ~1 s wait."""
        if graceful and self.connected.is_set():
            info = self.client.publish(
                self.topics["status"], self._status("offline"), qos=1, retain=True
            )
            info.wait_for_publish(1.0)
        stop_client(self.client, self.connected)

    def crash(self) -> None:
        """Drop the TCP connection without a DISCONNECT, so the broker fires the Last
        Will (a device losing power); for fault tests."""
        sock = self.client.socket()
        self.client.loop_stop()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.connected.clear()

    # -- paho callbacks (network thread) ------------------------------------------------
    def _status(self, state: str, **extra: Any) -> bytes:
        status: dict[str, Any] = {
            "device_id": self.settings.device_id,
            "state": state,
            "protocol_version": wire.PROTOCOL_VERSION,
            **extra,
        }
        if state != "offline" and getattr(self, "last_round", None) is not None:
            status["round"] = self.last_round
        return json.dumps(status).encode()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        refusal = connack_refusal(reason)
        if refusal is not None:
            self.refused = refusal
            LOG.warning("device %s: connect refused: %s", self.settings.device_id, refusal)
            return
        self.refused = None
        self.counters.connects += 1
        description = dict(
            self.settings.description
            or default_description(self.settings.device_id, self.settings.fleet)
        )
        client.publish(self.topics["description"], json.dumps(description), qos=1, retain=True)
        client.subscribe(self.topics["task"], qos=self.settings.update_qos)
        client.publish(self.topics["status"], self._status("online"), qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.settings.tasks_per_wake is None:
            self._handle(message)
            return
        with self._lock:
            if self.work_done.is_set():
                return  # not acknowledged: the broker keeps it for the next wake
        try:
            self._handle(message)
        finally:
            with contextlib.suppress(Exception):
                client.ack(message.mid, message.qos)

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        # Runs on paho's network thread: an exception escaping here would kill it and
        # leave the device connected but deaf. Nothing escapes.
        try:
            task = self._assembler.add(message.payload)
        except wire.CodecError as error:
            self.counters.bad_tasks += 1
            LOG.warning("device %s: bad task payload: %s", self.settings.device_id, error)
            return
        except Exception:  # noqa: BLE001
            self.counters.errors += 1
            LOG.exception("device %s: cannot read a task payload", self.settings.device_id)
            return
        if task is None:  # waiting for more chunks
            return
        try:
            self._answer(task)
        except Exception as error:  # noqa: BLE001
            self.counters.errors += 1
            LOG.exception("device %s: task %d failed", self.settings.device_id, task.msg_id)
            with contextlib.suppress(Exception):
                reason = f"{type(error).__name__}: {error}"
                self._publish_update([self._error(task, ERROR_CODE_FAILED, reason)])

    # -- tasks --------------------------------------------------------------------------
    def _answer(self, task: WireMessage) -> None:
        with self._lock:
            key = (task.round, task.msg_id)
            cached = self._answered.get(key)
            if cached is not None:
                self.counters.repeated_tasks += 1
                self._publish_update(cached)
                return
            self.counters.tasks += 1
            self._tasks_this_wake += 1
            if self._tasks_this_wake >= (self.settings.tasks_per_wake or 0) > 0:
                self.work_done.set()
            payloads = wire.split_message(self._reply_bytes(task), self.settings.max_payload)
            self._answered[key] = payloads
            while len(self._answered) > self.settings.reply_cache:
                self._answered.popitem(last=False)
            self._publish_update(payloads)

    def _reply_bytes(self, task: WireMessage) -> bytes:
        s = self.settings
        if task.device_id != s.device_id or task.msg_type not in (
            MessageType.TRAIN,
            MessageType.EVALUATE,
        ):
            self.counters.errors += 1
            return self._error(task, ERROR_CODE_BAD_TASK, "task not for this device")
        try:
            fields, arrays = self.handler(task)
            reply = wire.encode_message(
                MessageType.REPLY,
                round=task.round,
                msg_id=task.msg_id,
                device_id=s.device_id,
                fields=fields,
                arrays=arrays,
            )
        except Exception as error:  # noqa: BLE001 - any failure is reported, never fatal
            self.counters.errors += 1
            code = ERROR_CODE_BAD_TASK if isinstance(error, TinyfleetError) else ERROR_CODE_FAILED
            LOG.warning("device %s: task %d failed: %s", s.device_id, task.msg_id, error)
            return self._error(task, code, f"{type(error).__name__}: {error}")
        self.counters.replies += 1
        self.last_round = task.round
        return reply

    def _error(self, task: WireMessage, code: int, reason: str) -> bytes:
        return wire.encode_message(
            MessageType.ERROR,
            round=task.round,
            msg_id=task.msg_id,
            device_id=self.settings.device_id,
            fields={
                "code": code,
                "reason": reason.encode()[: wire.MAX_STRING].decode("utf-8", "ignore"),
            },
        )

    def _publish_update(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            info = self.client.publish(
                self.topics["update"], payload, qos=self.settings.update_qos
            )
            if self.settings.session_expiry_s is not None:
                self._unacked.append(info)


# -- the round work ------------------------------------------------------------------------


@dataclass
class RoundTaskHandler:
    """Runs :func:`tinyfleet.device.rounds.run_local_round` for TRAIN tasks.

    The task carries ONE float32 array (theta, flat head vector) and the round config
    (``round``, ``device-index``, ``seed``, the :class:`RoundPlan` keys); the reply carries
    phi (or its Top-P% / int8 update, as the plan says: :func:`~tinyfleet.device.rounds.
    upload_array`) under the same array name and the round's metrics. The stream comes from
    ``stream_for_device(seed, device_index)`` and the randomness from
    ``round_rng(seed, device_index, round)``: the same numbers as the in-process ClientApp.
    ``device_index``, when set, is this device's own index and a task naming another
    index is refused (a simulated device only has its own stream). ``trainer_for_task``
    replaces the Python head with another learner for each task (e.g. firmware over a
    serial link, :mod:`tinyfleet.firmware.bridge`); the round's config, samples and
    metrics stay the same.
    """

    spec: HeadSpec
    stream_for_device: StreamForDevice
    device_index: int | None = None
    macs_per_sample: int = 0
    trainer_for_task: Callable[[WireMessage], Trainer] | None = None
    #: ``upload_for_task(task)``: what replaces :func:`upload_array` for that task, or None.
    upload_for_task: Callable[[WireMessage], Callable[..., WireArray] | None] | None = None

    def __call__(self, task: WireMessage) -> tuple[Mapping[str, FieldValue], Sequence[WireArray]]:
        if task.msg_type != MessageType.TRAIN:
            raise UsageError("this device only trains (EVALUATE is done on held-out devices)")
        if len(task.arrays) != 1:
            raise UsageError(f"expected one parameter array, got {len(task.arrays)}")
        theta_wire = task.arrays[0]
        if len(theta_wire.shape) != 1:
            raise UsageError(f"theta must be a flat vector, got shape {theta_wire.shape}")
        out, metrics = run_reply_round(
            theta_wire.to_float32().ravel(),
            task.fields_dict(),
            self.spec,
            self.stream_for_device,
            array_name=theta_wire.name,
            device_id=task.device_id,
            # The task as it travelled (encoding is deterministic: same bytes, same size).
            task_bytes=encoded_bytes(
                task.msg_type, task.round, task.device_id, task.fields_dict(), list(task.arrays)
            ),
            macs_per_sample=self.macs_per_sample,
            own_device_index=self.device_index,
            trainer=None if self.trainer_for_task is None else self.trainer_for_task(task),
            upload=None if self.upload_for_task is None else self.upload_for_task(task),
        )
        return metrics, [out]
