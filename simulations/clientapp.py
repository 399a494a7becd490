"""The Flower ClientApp of a simulated device (the contract in docs/algorithms.md).

It reads theta and the round config from the Message, runs
:func:`tinyfleet.device.rounds.run_local_round` with the device's seeded stream, and
replies with phi and the round's metrics. The MQTT gateway relays the same content.
"""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.rounds import StreamForDevice, run_configured_round
from tinyfleet.server.records import (
    ARRAYS_KEY,
    CONFIG_KEY,
    METRICS_KEY,
    single_vector,
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
    phi, metrics = run_configured_round(
        single_vector(content.array_records[ARRAYS_KEY]),
        content.config_records[CONFIG_KEY],
        spec,
        stream_for_device,
        macs_per_sample=macs_per_sample,
    )
    reply = RecordDict(
        {
            ARRAYS_KEY: vector_record(phi),
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
