"""The Flower ClientApp of a simulated device (the contract in docs/algorithms.md).

It reads theta and the round config from the Message, runs
:func:`tinyfleet.device.rounds.run_reply_round` with the device's seeded stream, and
replies with what an MQTT device would send (phi, or the Top-P% / int8 update the plan
asks for), dequantised to float32 exactly as the MQTT gateway does, plus the round's
metrics. ``bytes-down`` / ``bytes-up`` are the sizes of the encoded task and reply wire
messages of the device ``sim-NNNN`` (the MQTT fleet's naming rule), so the in-process
numbers are the ones MQTT measures.
"""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.rounds import StreamForDevice, encoded_bytes, run_reply_round
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX
from tinyfleet.device.wire.topics import device_id_of
from tinyfleet.errors import UsageError
from tinyfleet.server.gateway_flower import message_to_task
from tinyfleet.server.records import (
    ARRAYS_KEY,
    CONFIG_KEY,
    METRICS_KEY,
    vector_record,
)


def handle_train(
    message: Message,
    spec: HeadSpec,
    stream_for_device: StreamForDevice,
    macs_per_sample: int = 0,
) -> Message:
    """Run one local round for the device named in the message's config; reply."""
    content = message.content
    config = content.config_records[CONFIG_KEY]
    try:
        index = int(config[KEY_DEVICE_INDEX])  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"round config lacks or garbles {error}") from None
    device_id = device_id_of(index) if index >= 0 else "sim-none"
    # The task as MQTT would carry it (for its size); its one array is theta, already
    # read out of the record: no second read of the same bytes.
    kind, server_round, fields, arrays = message_to_task(message)
    if len(arrays) != 1:
        raise UsageError(f"expected one parameter array, got {len(arrays)}")
    out, metrics = run_reply_round(
        arrays[0].values,
        config,
        spec,
        stream_for_device,
        array_name=arrays[0].name,
        device_id=device_id,
        task_bytes=encoded_bytes(kind, server_round, device_id, fields, arrays),
        macs_per_sample=macs_per_sample,
    )
    reply = RecordDict(
        {
            ARRAYS_KEY: vector_record(out.to_float32()),
            METRICS_KEY: MetricRecord(metrics),
        }
    )
    return Message(reply, reply_to=message)


def make_client_app(
    spec: HeadSpec, stream_for_device: StreamForDevice, macs_per_sample: int = 0
) -> ClientApp:
    """A ClientApp whose ``train`` handler is :func:`handle_train`."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        del context  # a device's state lives in its seeded stream, not in the node
        return handle_train(message, spec, stream_for_device, macs_per_sample)

    return app
