"""The Flower ClientApp of a simulated device (the contract in docs/algorithms.md).

It reads theta and the round config from the Message, runs
:func:`tinyfleet.device.rounds.run_local_round` with the device's seeded stream, and
replies with phi and the round's metrics. The MQTT gateway relays the same content.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.rounds import (
    ARRAYS_KEY,
    CONFIG_KEY,
    KEY_DEVICE_INDEX,
    KEY_ROUND,
    KEY_SEED,
    METRICS_KEY,
    RoundPlan,
    SampleStream,
    round_rng,
    run_local_round,
)
from tinyfleet.errors import UsageError

StreamForDevice = Callable[[int, int], SampleStream]
"""``stream_for_device(seed, device_index)``: the device's data stream (head inputs)."""


def encode_train_content(theta: np.ndarray, config: dict[str, object]) -> RecordDict:
    """The request content: ArrayRecord "arrays" = [theta], ConfigRecord "config"."""
    from flwr.app import ConfigRecord

    return RecordDict(
        {
            ARRAYS_KEY: ArrayRecord([np.asarray(theta, dtype=np.float32)]),
            CONFIG_KEY: ConfigRecord(config),  # type: ignore[arg-type]
        }
    )


def single_vector(record: ArrayRecord) -> np.ndarray:
    """The one float array an ArrayRecord of this contract carries."""
    arrays = record.to_numpy_ndarrays()
    if len(arrays) != 1:
        raise UsageError(f"expected one parameter array, got {len(arrays)}")
    return np.asarray(arrays[0])


def handle_train(
    message: Message,
    spec: HeadSpec,
    stream_for_device: StreamForDevice,
    macs_per_sample: int = 0,
) -> Message:
    """Run one local round for the device named in the message's config; reply."""
    content = message.content
    config = content.config_records[CONFIG_KEY]
    theta = single_vector(content.array_records[ARRAYS_KEY])
    plan = RoundPlan.from_config(config)  # type: ignore[arg-type]
    seed = int(config[KEY_SEED])  # type: ignore[arg-type]
    device = int(config[KEY_DEVICE_INDEX])  # type: ignore[arg-type]
    server_round = int(config[KEY_ROUND])  # type: ignore[arg-type]
    phi, stats = run_local_round(
        theta,
        spec,
        stream_for_device(seed, device),
        plan,
        round_rng(seed, device, server_round),
        macs_per_sample=macs_per_sample,
    )
    reply = RecordDict(
        {
            ARRAYS_KEY: ArrayRecord([phi]),
            METRICS_KEY: MetricRecord(stats.to_metrics(device, server_round)),
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
