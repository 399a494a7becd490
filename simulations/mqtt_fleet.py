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
import multiprocessing as mp
import pickle
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.mqtt import BrokerAddress
from tinyfleet.device.mqtt_client import DeviceSettings, MqttDevice, RoundTaskHandler, TaskHandler
from tinyfleet.device.rounds import StreamForDevice
from tinyfleet.device.wire.topics import device_ids
from tinyfleet.errors import UsageError
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.gateway import GatewayError, GatewaySettings, MqttGateway
from tinyfleet.server.gateway_flower import GatewayClientCall, route_by_config

#: paho's select() loop handles fd numbers < 1024; each client uses three fds.
DEVICES_PER_PROCESS = 250


@dataclass
class MqttFleet:
    """A running fleet: ``client_call(message) -> reply`` relays to the devices."""

    gateway: MqttGateway
    devices: list[MqttDevice]
    client_call: Callable[..., object]
    broker: ManagedBroker | None = None
    address: BrokerAddress = field(default_factory=BrokerAddress)
    remote_counters: dict[str, int] = field(default_factory=dict)

    def counters(self) -> dict[str, int]:
        """Gateway counters plus the devices' summed counters (``device-*``); devices in
        worker processes report theirs only when the fleet stops (``remote_counters``)."""
        out = self.gateway.counters.as_dict()
        for name in ("tasks", "replies", "repeated_tasks", "bad_tasks", "errors"):
            local = sum(getattr(d.counters, name) for d in self.devices)
            out[f"device-{name}"] = local + self.remote_counters.get(f"device-{name}", 0)
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
    connect_timeout: float = 120.0,
    fail_on_drop: bool = True,
    offline_wait: float = GatewaySettings.offline_wait,
    wrap_handler: Callable[[int, TaskHandler], TaskHandler] | None = None,
    stream_factory: Callable[[], StreamForDevice] | None = None,
    devices_per_process: int = DEVICES_PER_PROCESS,
) -> Iterator[MqttFleet]:
    """Start broker (if ``broker_url`` is None), devices and gateway; stop them on exit.

    ``stream_for_device(seed, device_index)`` is the same callable the in-process
    ClientApp gets (:func:`tinyfleet.simulations.clientapp.make_client_app`).
    ``wrap_handler(index, handler)`` may replace device ``index``'s task handler (fault
    injection in tests: slow, crashing or lying devices).

    paho waits on ``select()``, which cannot watch file descriptors above 1024, and each
    client holds three; so a fleet larger than ``devices_per_process`` runs its devices
    in worker processes of at most that many clients each. Those workers need a picklable
    ``stream_factory()`` that returns ``stream_for_device`` (e.g. a ``functools.partial``
    of a module-level function; see
    :func:`tinyfleet.simulations.device_cli.use_case_stream_factory`), or a picklable
    ``stream_for_device`` itself. ``wrap_handler`` applies only to in-process devices.
    """
    n_devices = int(n_devices)
    if n_devices < 1:
        raise UsageError(f"the fleet needs >= 1 device, got {n_devices}")
    with contextlib.ExitStack() as stack:
        broker: ManagedBroker | None = None
        ids = device_ids(n_devices)
        logins: dict[str, str] | None = None
        if broker_url is None:  # secure by default: generated per-device passwords
            broker = stack.enter_context(ManagedBroker(device_ids=ids))
            address, logins = broker.address(), broker.users
            gateway_address = broker.gateway_address()
        else:
            address = gateway_address = BrokerAddress.parse(broker_url)
        gateway = MqttGateway(
            gateway_address,
            GatewaySettings(
                fleet=fleet,
                round_timeout=round_timeout,
                retries=retries,
                max_payload=max_payload,
                fail_on_drop=fail_on_drop,
                offline_wait=offline_wait,
            ),
        )
        stack.enter_context(gateway)
        devices: list[MqttDevice] = []
        stack.callback(lambda: [d.stop() for d in devices])
        remote: dict[str, int] = {}
        workers: list[Any] = []
        if n_devices <= devices_per_process:
            for index, device_id in enumerate(ids):
                settings = _settings(device_id, address, fleet, max_payload, logins)
                handler: TaskHandler = RoundTaskHandler(
                    spec, stream_for_device, index, macs_per_sample
                )
                if wrap_handler is not None:
                    handler = wrap_handler(index, handler)
                devices.append(MqttDevice(settings, handler).start(wait=None))
        else:
            source = stream_factory if stream_factory is not None else stream_for_device
            try:
                pickle.dumps(source)
            except Exception as error:  # noqa: BLE001 - any pickling failure means the same
                raise UsageError(
                    f"{n_devices} devices need worker processes (> {devices_per_process} per "
                    f"process): pass a picklable stream_factory ({error})"
                ) from None
            workers = stack.enter_context(
                _worker_processes(
                    spec,
                    source,
                    stream_factory is not None,
                    ids,
                    address,
                    fleet,
                    macs_per_sample,
                    max_payload,
                    devices_per_process,
                    remote,
                    logins,
                )
            )
        try:
            gateway.wait_for_devices(ids, connect_timeout)
        except GatewayError:
            dead = [p.exitcode for p in workers if p.exitcode not in (None, 0)]
            if dead:
                raise GatewayError(
                    f"{len(dead)} device worker process(es) died (exit codes {dead}); a "
                    "script that starts a fleet must guard its body with "
                    "`if __name__ == '__main__':` (workers are spawned)"
                ) from None
            raise
        call = GatewayClientCall(gateway, route_by_config(ids))
        yield MqttFleet(gateway, devices, call, broker, address, remote)


def _settings(
    device_id: str,
    address: BrokerAddress,
    fleet: str,
    max_payload: int,
    logins: dict[str, str] | None = None,
) -> DeviceSettings:
    login = {} if logins is None else {"username": device_id, "password": logins[device_id]}
    return address.device_settings(device_id, fleet=fleet, max_payload=max_payload, **login)


@contextlib.contextmanager
def _worker_processes(
    spec: HeadSpec,
    source: Any,
    is_factory: bool,
    ids: list[str],
    address: BrokerAddress,
    fleet: str,
    macs_per_sample: int,
    max_payload: int,
    per_process: int,
    remote: dict[str, int],
    logins: dict[str, str] | None = None,
) -> Iterator[list[Any]]:
    """Device clients in spawned worker processes; their counters land in ``remote``."""
    ctx = mp.get_context("spawn")  # no fork of a process that runs paho threads
    stop, results = ctx.Event(), ctx.Queue()
    indices = list(range(len(ids)))
    groups = [indices[i : i + per_process] for i in range(0, len(ids), per_process)]
    procs = [
        ctx.Process(
            target=_device_worker,
            args=(
                spec,
                source,
                is_factory,
                [(i, ids[i]) for i in g],
                address,
                fleet,
                macs_per_sample,
                max_payload,
                stop,
                results,
                None if logins is None else {ids[i]: logins[ids[i]] for i in g},
            ),
            daemon=True,
        )
        for g in groups
    ]
    for proc in procs:
        proc.start()
    try:
        yield procs
    finally:
        stop.set()
        for _ in procs:
            try:
                counters = results.get(timeout=60)
            except Exception:  # noqa: BLE001 - a dead worker reports nothing
                break
            for key, value in counters.items():
                remote[key] = remote.get(key, 0) + int(value)
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()


def _device_worker(
    spec: HeadSpec,
    source: Any,
    is_factory: bool,
    members: list[tuple[int, str]],
    address: BrokerAddress,
    fleet: str,
    macs_per_sample: int,
    max_payload: int,
    stop: Any,
    results: Any,
    logins: dict[str, str] | None = None,
) -> None:
    """Body of one worker process: many device clients until ``stop`` is set."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    stream_for_device = source() if is_factory else source
    devices = [
        MqttDevice(
            _settings(device_id, address, fleet, max_payload, logins),
            RoundTaskHandler(spec, stream_for_device, index, macs_per_sample),
        ).start(wait=None)
        for index, device_id in members
    ]
    stop.wait()
    totals: dict[str, int] = {}
    for device in devices:
        for name in ("tasks", "replies", "repeated_tasks", "bad_tasks", "errors"):
            totals[f"device-{name}"] = totals.get(f"device-{name}", 0) + getattr(
                device.counters, name
            )
        device.stop(graceful=False)
    results.put(totals)
