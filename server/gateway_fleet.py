"""A whole MQTT fleet in one process: broker + N device clients + the gateway.

:func:`run_mqtt_fleet` is what ``tinyfleet simulate USE_CASE --transport mqtt`` uses: it
starts Mosquitto (unless given a broker URL), N :class:`~tinyfleet.device.mqtt_client.MqttDevice`
clients (each with its own paho thread, its own seeded data stream and the round work of
:mod:`tinyfleet.device.rounds`), and a gateway, and yields a :class:`MqttFleet` whose
``client_call`` plugs into :class:`~tinyfleet.server.grid.InProcessGrid` /
:func:`~tinyfleet.server.run.run_in_process`. Every device does exactly what the
in-process ClientApp does, so the final parameters are bit-identical for the same seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.mqtt_client import (
    DeviceSettings,
    MqttDevice,
    RoundTaskHandler,
    StreamForDevice,
    TaskHandler,
)
from tinyfleet.errors import UsageError
from tinyfleet.server.broker import BrokerAddress, ManagedBroker
from tinyfleet.server.gateway import GatewaySettings, MqttGateway
from tinyfleet.server.gateway_flower import GatewayClientCall, route_by_config


def device_ids(n_devices: int, prefix: str = "sim") -> list[str]:
    """``sim-0000, sim-0001, ...``: device ``i`` has index ``i``."""
    return [f"{prefix}-{i:04d}" for i in range(int(n_devices))]


@dataclass
class MqttFleet:
    """A running fleet: ``client_call(message) -> reply`` relays to the devices."""

    gateway: MqttGateway
    devices: list[MqttDevice]
    client_call: Callable[..., object]
    broker: ManagedBroker | None = None
    address: BrokerAddress = field(default_factory=BrokerAddress)

    def counters(self) -> dict[str, int]:
        """Gateway counters plus the devices' summed counters (``device-*``)."""
        out = self.gateway.counters.as_dict()
        for name in ("tasks", "replies", "repeated_tasks", "bad_tasks", "errors"):
            out[f"device-{name}"] = sum(getattr(d.counters, name) for d in self.devices)
        return out


@contextlib.contextmanager
def run_mqtt_fleet(
    spec: HeadSpec,
    stream_for_device: StreamForDevice,
    n_devices: int,
    *,
    broker_url: str | None = None,
    fleet: str = "default",
    macs_per_sample: int = 0,
    round_timeout: float = 30.0,
    retries: int = 1,
    max_payload: int = 256 * 1024,
    connect_timeout: float = 60.0,
    fail_on_drop: bool = True,
    wrap_handler: Callable[[int, TaskHandler], TaskHandler] | None = None,
) -> Iterator[MqttFleet]:
    """Start broker (if ``broker_url`` is None), devices and gateway; stop them on exit.

    ``stream_for_device(seed, device_index)`` is the same callable the in-process
    ClientApp gets (:func:`tinyfleet.server.clientapp.make_client_app`).
    ``wrap_handler(index, handler)`` may replace device ``index``'s task handler (fault
    injection in tests: slow, crashing or lying devices).
    """
    if int(n_devices) < 1:
        raise UsageError(f"the fleet needs >= 1 device, got {n_devices}")
    with contextlib.ExitStack() as stack:
        broker: ManagedBroker | None = None
        if broker_url is None:
            broker = stack.enter_context(ManagedBroker())
            address = broker.address()
        else:
            address = BrokerAddress.parse(broker_url)
        ids = device_ids(n_devices)
        gateway = MqttGateway(
            address,
            GatewaySettings(
                fleet=fleet, round_timeout=round_timeout, retries=retries, max_payload=max_payload
            ),
        )
        stack.enter_context(gateway)
        devices: list[MqttDevice] = []
        stack.callback(lambda: [d.stop() for d in devices])
        for index, device_id in enumerate(ids):
            settings = DeviceSettings(
                device_id,
                address.host,
                address.port,
                fleet=fleet,
                username=address.username,
                password=address.password,
                tls_ca=address.tls_ca,
                max_payload=max_payload,
            )
            handler: TaskHandler = RoundTaskHandler(spec, stream_for_device, index, macs_per_sample)
            if wrap_handler is not None:
                handler = wrap_handler(index, handler)
            devices.append(MqttDevice(settings, handler).start(wait=None))
        gateway.wait_for_devices(ids, connect_timeout)
        call = GatewayClientCall(gateway, route_by_config(ids))
        yield MqttFleet(gateway, devices, call, broker, address)
