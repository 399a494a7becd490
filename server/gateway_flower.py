"""Flower <-> MQTT: the gateway as a Flower "client call" and as a Flower ClientApp.

The Flower strategies talk to devices through Messages (the contract in
:mod:`tinyfleet.device.rounds`: ArrayRecord ``arrays`` + ConfigRecord ``config`` in,
ArrayRecord ``arrays`` + MetricRecord ``metrics`` out). :class:`GatewayClientCall` turns
such a Message into a wire task (docs/protocol.md), sends it to one device through an
:class:`~tinyfleet.server.gateway.MqttGateway` and turns the device's reply back into a
Message. Two ways to run it:

* in process: ``InProcessGrid(GatewayClientCall(gateway, route), num_nodes)`` (what
  ``tinyfleet simulate --transport mqtt`` and ``tinyfleet server run`` do); Flower's own
  ``Strategy.start()`` loop drives the MQTT fleet;
* behind Flower's Deployment Engine: :func:`make_gateway_client_app` is a ClientApp a
  *gateway SuperNode* runs (``flower-supernode --node-config "broker='mqtt://...'
  fleet='default'"``); one SuperNode relays to many MQTT devices. Under a SuperNode the
  destination node is the gateway, so the device is named in the config: ``device-id``
  (a string) or ``device-index`` (into the fleet's sorted device list).

A failed relay (timeout, device dropped, device error, invalid reply) becomes a Flower
error reply: the strategy counts it as a failure and the model is not touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from tinyfleet.device import wire
from tinyfleet.device.mqtt import BrokerAddress
from tinyfleet.device.wire import FieldValue, MessageType, WireArray, WireMessage
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND
from tinyfleet.errors import TinyfleetError
from tinyfleet.server.gateway import GatewayError, MqttGateway
from tinyfleet.server.gateway_errors import (
    DeviceDroppedError,
    GatewayTimeout,
    InvalidReplyError,
)
from tinyfleet.server.records import (
    ARRAYS_KEY,
    CONFIG_KEY,
    METRICS_KEY,
    array_values,
    float32_array,
)
from tinyfleet.server.replies import ERROR_CODE_REFUSED

LOG = logging.getLogger(__name__)

KEY_DEVICE_ID = "device-id"
ERROR_CODE_RELAY = 101  # Flower Error code for a failed MQTT relay
ERROR_CODE_OFFLINE = 102  # ... because the device was offline past the wait
ERROR_CODE_TIMEOUT = 103  # ... because no reply came within the timeout

Route = Callable[[Message], str]


def route_by_config(device_ids: Sequence[str]) -> Route:
    """Route to config ``device-id`` if given, else to ``device_ids[device-index]``."""
    ids = list(device_ids)

    def route(message: Message) -> str:
        config: Mapping[str, Any] = message.content.config_records.get(CONFIG_KEY, {})
        if KEY_DEVICE_ID in config:
            return str(config[KEY_DEVICE_ID])
        if KEY_DEVICE_INDEX not in config:
            raise TinyfleetError("task names no device (config device-id / device-index)")
        index = int(config[KEY_DEVICE_INDEX])
        if not 0 <= index < len(ids):
            raise TinyfleetError(f"device index {index} outside the fleet of {len(ids)}")
        return ids[index]

    return route


def message_to_task(
    message: Message,
) -> tuple[MessageType, int, dict[str, FieldValue], list[WireArray]]:
    """A Flower train/evaluate Message as wire task parts ``(type, round, fields, arrays)``."""
    content = message.content
    kinds = set(content.keys()) - {ARRAYS_KEY, CONFIG_KEY}
    if kinds:
        raise wire.CodecError(f"records {sorted(kinds)} cannot travel over MQTT")
    fields: dict[str, FieldValue] = {}
    if CONFIG_KEY in content:
        for key, value in content.config_records[CONFIG_KEY].items():
            if not isinstance(value, bool | int | float | str):
                raise wire.CodecError(f"config {key!r}: {type(value).__name__} cannot travel")
            fields[key] = value
    arrays: list[WireArray] = []
    if ARRAYS_KEY in content:
        for key, array in content.array_records[ARRAYS_KEY].items():
            values = array_values(array)  # a fresh C-ordered copy: the wire array's values
            if values.dtype != np.float32:
                raise wire.CodecError(f"array {key!r} is {values.dtype}; only float32 travels")
            arrays.append(WireArray(key, values.shape, wire.DType.FLOAT32, values.reshape(-1)))
    kind = (
        MessageType.EVALUATE
        if message.metadata.message_type.startswith("evaluate")
        else (MessageType.TRAIN)
    )
    round_ = int(fields.get(KEY_ROUND, _group_round(message)))
    return kind, round_, fields, arrays


def _group_round(message: Message) -> int:
    try:
        return int(message.metadata.group_id)
    except (TypeError, ValueError):
        return 0


def reply_to_message(reply: WireMessage, request: Message) -> Message:
    """The device's REPLY as the Flower reply Message (dense float32 arrays)."""
    arrays = ArrayRecord()  # item by item: ArrayRecord(dict) would copy every Array again
    for a in reply.arrays:
        arrays[a.name] = float32_array(a.to_float32())
    metrics = MetricRecord(
        {k: v for k, v in reply.fields if isinstance(v, int | float) and not isinstance(v, bool)}
    )
    return Message(RecordDict({ARRAYS_KEY: arrays, METRICS_KEY: metrics}), reply_to=request)


class GatewayClientCall:
    """``call(message) -> reply``: relay one Flower Message to its MQTT device."""

    def __init__(self, gateway: MqttGateway, route: Route) -> None:
        self.gateway = gateway
        self.route = route

    def __call__(self, message: Message) -> Message:
        try:
            device_id = self.route(message)
            kind, round_, fields, arrays = message_to_task(message)
            reply = self.gateway.request(
                device_id, round=round_, fields=fields, arrays=arrays, msg_type=kind
            )
        except (GatewayError, TinyfleetError) as error:
            LOG.warning("relay failed: %s", error)
            code = ERROR_CODE_RELAY
            if isinstance(error, DeviceDroppedError):
                code = ERROR_CODE_OFFLINE  # server/reassign.py may hand the task on
            elif isinstance(error, GatewayTimeout):
                code = ERROR_CODE_TIMEOUT
            elif isinstance(error, InvalidReplyError):
                code = ERROR_CODE_REFUSED  # the content: counts against the device
            return Message(Error(code=code, reason=str(error)), reply_to=message)
        return reply_to_message(reply, message)


def make_gateway_client_app(
    gateway_factory: Callable[[Context], tuple[MqttGateway, Route]] | None = None,
) -> ClientApp:
    """A Flower ClientApp that relays train/evaluate Messages to MQTT devices.

    ``gateway_factory(context)`` makes the (started) gateway and route once per process;
    the default reads ``broker`` (URL), ``fleet`` and ``devices`` (comma-separated device
    ids, for ``device-index`` routing), and for sleeping devices ``task-expiry`` and
    ``round-timeout`` (seconds) from ``context.node_config``.
    """
    state: dict[str, Any] = {}

    def relay(message: Message, context: Context) -> Message:
        if "call" not in state:
            gateway, route = (gateway_factory or _gateway_from_node_config)(context)
            state["call"] = GatewayClientCall(gateway, route)
        return state["call"](message)  # type: ignore[no-any-return]

    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        return relay(message, context)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        return relay(message, context)

    return app


def broker_from_node_config(config: Mapping[str, Any]) -> BrokerAddress:
    """A site's broker from a SuperNode's node config: ``broker`` (URL), and the gateway's
    password from ``password-file`` or $TINYFLEET_MQTT_PASSWORD, never a command line."""
    from tinyfleet.device.mqtt import read_password

    address = BrokerAddress.parse(str(config.get("broker", "mqtt://127.0.0.1:1883")))
    if address.username is not None and address.password is None:
        path = config.get("password-file")
        password = read_password(None, None if path is None else str(path))
        address = address.with_credentials(address.username, password)
    return address


def _gateway_from_node_config(context: Context) -> tuple[MqttGateway, Route]:
    from tinyfleet.server.gateway import GatewaySettings

    config = context.node_config
    address = broker_from_node_config(config)
    # Sleeping devices: tasks wait in their sessions up to task-expiry s; a (synchronous)
    # relay waits round-timeout s for the reply, so give it at least the sleep period.
    expiry = config.get("task-expiry")
    settings = GatewaySettings(
        fleet=str(config.get("fleet", "default")),
        round_timeout=float(config.get("round-timeout", 30.0)),  # type: ignore[arg-type]
        task_expiry_s=None if expiry is None else float(expiry),  # type: ignore[arg-type]
    )
    gateway = MqttGateway(address, settings)
    gateway.start()
    devices = [d for d in str(config.get("devices", "")).split(",") if d]
    return gateway, route_by_config(devices)
