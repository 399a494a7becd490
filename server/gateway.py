"""The server's MQTT gateway: sends tasks to devices and waits for their replies.

One :class:`MqttGateway` holds one paho client subscribed to every device's ``update``,
``status`` and ``description`` topic of a fleet (docs/protocol.md). :meth:`request`
publishes a task (chunked when large) to one device and blocks until that device's reply
arrives, the per-round timeout passes (then it re-sends, up to ``retries`` times), or the
device drops (its Last Will says ``offline``).

Robustness rules (each counted in :class:`GatewayCounters`, logged, never fatal):

* exactly one reply per task ``msg_id`` is accepted; a duplicate or late reply (the task
  already answered, timed out, or never existed) is dropped;
* undecodable payloads (bad CRC, truncated, oversized, ...) are dropped;
* a reply whose header device id is not the topic's device is dropped (the broker's ACL
  already stops a device publishing under another's topic);
* a reply whose arrays do not match the task's names and shapes, or hold NaN/Inf, makes
  the request fail with :class:`InvalidReplyError`, so the model never sees it;
* after a broker restart the gateway and devices reconnect, and every open task is sent
  again (devices answer a repeated ``msg_id`` from their reply cache, so nothing is
  trained or applied twice).

Batched and non-blocking tasks (a fleet-wide round from one thread, devices that sleep)
are in :mod:`tinyfleet.server.gateway_tasks`; settings and counters in
:mod:`tinyfleet.server.gateway_settings`. The Flower side (turning a Flower ``Message``
into a task and back) lives in :mod:`tinyfleet.server.gateway_flower`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tinyfleet.device import wire
from tinyfleet.device.mqtt import (
    BrokerAddress,
    connack_refusal,
    make_client,
    start_client,
    stop_client,
)
from tinyfleet.device.wire import FieldValue, MessageType, WireArray, WireMessage
from tinyfleet.server.gateway_errors import (
    DeviceDroppedError,
    DeviceReportedError,
    GatewayError,
    GatewayTimeout,
    InvalidReplyError,
)
from tinyfleet.server.gateway_settings import GatewayCounters, GatewaySettings, PendingTask
from tinyfleet.server.gateway_tasks import BatchedTasks
from tinyfleet.server.validation import update_problem

LOG = logging.getLogger(__name__)


class MqttGateway(BatchedTasks):
    """The server end of the fleet's MQTT traffic. Use as a context manager."""

    def __init__(self, address: BrokerAddress, settings: GatewaySettings | None = None) -> None:
        self.address = address
        self.settings = settings or GatewaySettings()
        self.counters = GatewayCounters()
        self.status: dict[str, dict[str, Any]] = {}
        self.descriptions: dict[str, dict[str, Any]] = {}
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._devices_changed = threading.Condition(self._lock)
        self._replied = threading.Condition(self._lock)
        self._pending: dict[int, PendingTask] = {}
        self._finished: OrderedDict[int, None] = OrderedDict()
        # A random start keeps msg_ids of two gateway runs apart (device reply caches).
        self._next_id = secrets.randbits(31)
        limit = self.settings.max_message_bytes
        # Partial replies hold only the chunk bytes that arrived: per device at most two
        # messages' worth, 32 MiB in all, dropped when not completed within the timeout.
        self._assembler = wire.ChunkAssembler(
            limit,
            max_pending=256,
            max_device_bytes=2 * limit,
            max_total_bytes=max(32 * 1024 * 1024, 2 * limit),
            timeout_s=max(30.0, 2 * self.settings.round_timeout),
        )
        fleet = self.settings.fleet
        wire.topic(fleet, "x", "task")  # validate the fleet name
        self._subscriptions = [
            f"{wire.TOPIC_ROOT}/{fleet}/+/{kind}" for kind in ("update", "status", "description")
        ]
        client = make_client(
            self.settings.client_id or f"tinyfleet-gateway-{secrets.token_hex(4)}",
            self.connected,
            username=address.username,
            password=address.password,
            tls_ca=address.tls_ca,
            reconnect_max_s=2.0,
            mqtt5=self.settings.task_expiry_s is not None,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        self.refused: str | None = None  # the broker's CONNACK reason, if it refused us

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, wait: float = 10.0) -> MqttGateway:
        a = self.address
        if not start_client(
            self.client, a.host, a.port, self.settings.keepalive, self.connected, wait
        ):
            self.stop()
            if self.refused is not None:
                raise GatewayError(
                    f"gateway: broker {self.address.url} refused the login "
                    f"(user {a.username or '(none)'}): {self.refused}"
                )
            raise GatewayError(f"gateway: no broker at {self.address.url} within {wait:.0f} s")
        return self

    def stop(self) -> None:
        stop_client(self.client, self.connected)

    def __enter__(self) -> MqttGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- devices --------------------------------------------------------------------------
    def online_devices(self) -> set[str]:
        with self._lock:
            return {d for d, s in self.status.items() if s.get("state") != "offline"}

    def wait_for_devices(self, device_ids: Iterable[str], timeout: float) -> None:
        """Block until every device in ``device_ids`` has said it is online."""
        wanted = set(device_ids)
        deadline = time.monotonic() + timeout
        with self._devices_changed:
            while True:
                online = {d for d, s in self.status.items() if s.get("state") != "offline"}
                missing = wanted - online
                if not missing:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GatewayTimeout(
                        f"{len(missing)} of {len(wanted)} devices not online within "
                        f"{timeout:.0f} s (e.g. {sorted(missing)[:3]})"
                    )
                self._devices_changed.wait(min(remaining, 0.5))

    # -- tasks ----------------------------------------------------------------------------
    def request(
        self,
        device_id: str,
        *,
        round: int,
        fields: Mapping[str, FieldValue],
        arrays: Sequence[WireArray],
        msg_type: MessageType = MessageType.TRAIN,
        timeout: float | None = None,
    ) -> WireMessage:
        """Send one task to ``device_id``; return its validated REPLY.

        Raises
        ------
        GatewayError
            (a subclass) when there is no usable reply; the caller's model is untouched.
        wire.CodecError
            when the task itself cannot be encoded.
        """
        timeout = float(timeout or self.settings.round_timeout)
        topic, pending = self._open(device_id, round, fields, arrays, msg_type)
        try:
            return self._wait(topic, pending, timeout)
        finally:
            self._forget(pending.msg_id)

    def _open(
        self,
        device_id: str,
        round: int,
        fields: Mapping[str, FieldValue],
        arrays: Sequence[WireArray],
        msg_type: MessageType,
    ) -> tuple[str, PendingTask]:
        """Register a task and publish it (unless its device is offline: then
        :meth:`_wait` sends it if the device comes back in time)."""
        topic, pending = self._register(device_id, round, fields, arrays, msg_type)
        with self._lock:
            offline = self.status.get(device_id, {}).get("state") == "offline"
        if offline and self.settings.fail_on_drop:
            pending.dropped = True
        else:
            try:
                self._publish(topic, pending)
            except BaseException:
                self._forget(pending.msg_id)
                raise
        return topic, pending

    def _register(
        self,
        device_id: str,
        round: int,
        fields: Mapping[str, FieldValue],
        arrays: Sequence[WireArray],
        msg_type: MessageType,
    ) -> tuple[str, PendingTask]:
        """Encode a task and register it as pending (not yet published)."""
        topic = wire.topic(self.settings.fleet, device_id, "task")
        with self._lock:
            msg_id = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        encoded = wire.encode_message(
            msg_type, round=round, msg_id=msg_id, device_id=device_id, fields=fields, arrays=arrays
        )
        pending = PendingTask(
            device_id,
            round,
            msg_id,
            wire.split_message(encoded, self.settings.max_payload),
            tuple((a.name, a.shape) for a in arrays),
        )
        with self._lock:
            self._pending[msg_id] = pending
            self.counters.tasks += 1
        return topic, pending

    def _forget(self, msg_id: int) -> None:
        with self._lock:
            self._pending.pop(msg_id, None)
            self._finished[msg_id] = None
            while len(self._finished) > 4096:
                self._finished.popitem(last=False)

    def _wait(self, topic: str, pending: PendingTask, timeout: float) -> WireMessage:
        deadline = time.monotonic() + timeout
        attempts = 0
        back_by: float | None = None  # while dropped: when to give up waiting for it
        while True:
            if pending.reply is not None:
                return self._validate(pending, pending.reply)
            if pending.dropped and self.settings.fail_on_drop:
                now = time.monotonic()
                if back_by is None:
                    back_by = now + self.settings.offline_wait
                if now >= back_by:
                    raise DeviceDroppedError(
                        f"device {pending.device_id} offline in round {pending.round} and "
                        f"not back within {self.settings.offline_wait:g} s"
                    )
                pending.event.wait(back_by - now)
                pending.event.clear()
                continue
            if back_by is not None:  # it came back: a fresh timeout for the resent task
                back_by = None
                deadline = time.monotonic() + timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if attempts < self.settings.retries:
                    attempts += 1
                    with self._lock:
                        self.counters.retries += 1
                    deadline = time.monotonic() + timeout
                    self._publish(topic, pending)
                    continue
                with self._lock:
                    self.counters.timeouts += 1
                raise GatewayTimeout(
                    f"no reply from {pending.device_id} for round {pending.round} within "
                    f"{timeout:.1f} s x {attempts + 1}"
                )
            if pending.resend and not pending.dropped:
                pending.resend = False
                with self._lock:
                    self.counters.resends += 1
                self._publish(topic, pending)
            pending.event.wait(remaining)
            pending.event.clear()

    def _publish(self, topic: str, pending: PendingTask) -> None:
        props = None
        if self.settings.task_expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = math.ceil(self.settings.task_expiry_s)
        for payload in pending.payloads:
            self.client.publish(topic, payload, qos=self.settings.task_qos, properties=props)
        with self._lock:
            self.counters.publishes += 1

    def _validate(self, pending: PendingTask, reply: WireMessage, locked: bool = False) -> WireMessage:
        lock = contextlib.nullcontext() if locked else self._lock
        if reply.msg_type == MessageType.ERROR:
            with lock:
                self.counters.device_errors += 1
            f = reply.fields_dict()
            raise DeviceReportedError(
                pending.device_id, int(f.get("code", 0)), str(f.get("reason", ""))
            )
        problem = None
        got = tuple((a.name, a.shape) for a in reply.arrays)
        if reply.msg_type != MessageType.REPLY:
            problem = f"a {reply.msg_type.name} message is not a reply"
        elif [name for name, _ in got] != [name for name, _ in pending.arrays]:
            problem = f"arrays {got} do not match the task's {pending.arrays}"
        else:
            problem = next(
                filter(
                    None,
                    (
                        update_problem(a.to_float32(), s)
                        for a, (_, s) in zip(reply.arrays, pending.arrays, strict=True)
                    ),
                ),
                None,
            )
        if problem is not None:
            with lock:
                self.counters.invalid += 1
            LOG.warning("gateway: reply from %s rejected: %s", pending.device_id, problem)
            raise InvalidReplyError(f"reply from {pending.device_id} rejected: {problem}")
        return reply

    # -- paho callbacks (network thread) --------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.refused = connack_refusal(reason)
        if self.refused is not None:
            LOG.warning("gateway: connect refused: %s", self.refused)
            return
        for sub in self._subscriptions:
            client.subscribe(sub, qos=self.settings.task_qos if "update" in sub else 1)
        with self._lock:
            self.counters.connects += 1
            reconnect = self.counters.connects > 1
            if reconnect:  # the broker may have lost in-flight tasks: send them again
                for p in self._pending.values():
                    p.resend = True
                    p.event.set()
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            _, device_id, kind = wire.parse_topic(message.topic)
        except wire.CodecError:
            return
        try:
            if kind == "update":
                self._on_update(device_id, bytes(message.payload))
            elif kind == "status":
                self._on_status(device_id, bytes(message.payload))
            elif kind == "description":
                doc = _json_object(bytes(message.payload))
                if doc is not None:
                    with self._lock:
                        self.descriptions[device_id] = doc
        except Exception:  # noqa: BLE001 - the network thread must survive anything
            LOG.exception("gateway: error handling %s", message.topic)

    def _on_update(self, device_id: str, payload: bytes) -> None:
        try:
            # One decode (header, CRC, body) per payload; a chunk is reassembled from it.
            item = wire.decode(payload, self.settings.max_message_bytes)
            if item.device_id != device_id:
                with self._lock:
                    self.counters.foreign += 1
                LOG.warning("gateway: update on %s's topic names another device", device_id)
                return
            reply = self._assembler.add_decoded(item)
        except wire.CodecError as error:
            with self._lock:
                self.counters.malformed += 1
            LOG.warning("gateway: dropped bad update from %s: %s", device_id, error)
            return
        if reply is None:
            return
        with self._lock:
            pending = self._pending.get(reply.msg_id)
            if (
                pending is None
                or pending.reply is not None
                or pending.device_id != device_id
                or pending.round != reply.round
            ):
                self.counters.duplicates += 1
                LOG.info(
                    "gateway: dropped duplicate/late reply %d from %s", reply.msg_id, device_id
                )
                return
            self.counters.replies += 1
            pending.reply = reply
            self._replied.notify_all()
        pending.event.set()

    def _on_status(self, device_id: str, payload: bytes) -> None:
        doc = _json_object(payload) if payload else {"state": "offline"}
        if doc is None:
            return
        with self._lock:
            was_asleep = self.status.get(device_id, {}).get("state") == "asleep"
            self.status[device_id] = doc
            offline = doc.get("state") == "offline"
            for p in self._pending.values():
                if p.device_id != device_id or p.reply is not None:
                    continue
                if was_asleep or doc.get("state") == "asleep":
                    # Its persistent session holds the task: the broker delivers it on wake.
                    continue
                if offline:
                    self.counters.drops += 1
                    p.dropped = True
                else:  # back (or reconnected after a broker restart): send it again
                    if p.dropped:
                        self.counters.recovered += 1
                    p.dropped = False
                    p.resend = True
                p.event.set()
            self._devices_changed.notify_all()


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
