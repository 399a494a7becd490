"""``tinyfleet bridge serial``: firmware on a serial link joins an MQTT fleet.

The bridge plays the board's sensor here, drawing the samples of a simulated use case
(that is why it lives with the simulations); the link, the framing and the firmware
trainer are :mod:`tinyfleet.firmware.bridge`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from tinyfleet.device.mqtt import BrokerAddress
from tinyfleet.device.mqtt_client import MqttDevice, RoundTaskHandler
from tinyfleet.device.wire.topics import device_index_from_id
from tinyfleet.firmware.bridge import FirmwareTrainer, firmware_description, open_port


def register(subparsers: Any) -> None:
    """Add ``tinyfleet bridge`` to the tinyfleet parser."""
    bridge = subparsers.add_parser(
        "bridge",
        help="connect a board's serial link to MQTT",
        description="Bridges between firmware serial links and the MQTT fleet.",
    )
    bsub = bridge.add_subparsers(dest="bridge_command", required=True, metavar="SUBCOMMAND")
    serial = bsub.add_parser(
        "serial",
        help="relay a serial port / pty / tcp:HOST:PORT to MQTT as a device client",
        description=(
            "Join the MQTT fleet as --device-id on behalf of the firmware on PORT (a serial "
            "device, a pty, or tcp:HOST:PORT such as QEMU's UART): each TRAIN task goes to "
            "the firmware as a COBS+CRC frame, followed by the device's k samples of "
            "--use-case (the bridge plays the sensor), and the firmware's REPLY goes back to "
            "the broker. Runs until Ctrl-C."
        ),
    )
    serial.add_argument("port", help="/dev/ttyACM0, /dev/pts/N or tcp:127.0.0.1:4444")
    serial.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host:port")
    serial.add_argument("--fleet", default="default", help="fleet name")
    serial.add_argument("--device-id", required=True, help="device id, e.g. qemu-0003")
    serial.add_argument("--use-case", default="sine", help="use case whose stream to feed")
    serial.add_argument(
        "--device-index", type=int, default=None, help="stream index (default: from the id)"
    )
    serial.add_argument(
        "--board",
        default="qemu-mps2-an386",
        choices=("qemu-mps2-an386", "nano33ble"),
        help="board in the published device description (default: qemu-mps2-an386)",
    )
    serial.set_defaults(func=_bridge_serial)


def _bridge_serial(args: argparse.Namespace) -> int:
    return run_serial_bridge(
        args.port,
        args.broker,
        args.fleet,
        args.device_id,
        args.use_case,
        args.device_index,
        args.board,
    )


def run_serial_bridge(
    port: str,
    broker: str,
    fleet: str,
    device_id: str,
    use_case_name: str,
    device_index: int | None,
    board: str = "qemu-mps2-an386",
) -> int:
    """``tinyfleet bridge serial``: relay until Ctrl-C."""
    from tinyfleet.simulations.fleet import Fleet
    from tinyfleet.simulations.usecase import get_use_case

    address = BrokerAddress.parse(broker)
    use_case = get_use_case(use_case_name)
    sim = Fleet(use_case, use_case.make_backbone())
    if device_index is None:
        device_index = device_index_from_id(device_id)
    link, stack = open_port(port)
    with stack:
        trainer = FirmwareTrainer(link, use_case.head_spec, audio=_takes_audio(use_case_name))
        handler = RoundTaskHandler(
            use_case.head_spec,
            sim.stream_for_device(),
            device_index,
            sim.macs_per_sample,
            trainer_for_task=trainer.for_task,
            upload_for_task=trainer.upload_for_task,
        )
        settings = address.device_settings(
            device_id, fleet=fleet, description=firmware_description(device_id, fleet, board)
        )
        device = MqttDevice(settings, handler).start(wait=None)
        print(f"bridging {port} as device {device_id} to {address.url}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            device.stop()
        print(f"stopped; {device.counters.replies} round(s) answered", flush=True)
    return 0


def _takes_audio(use_case_name: str) -> bool:
    """Whether the use case's exported model card says its input is raw audio (kws):
    firmware built from that card computes the features, so it gets raw windows."""
    if use_case_name != "kws":
        return False
    from tinyfleet.device.frontend import card_takes_audio
    from tinyfleet.device.tooling.modelcard import read_model_card
    from tinyfleet.simulations.usecases.kws import model_dir

    return card_takes_audio(read_model_card(model_dir()))
