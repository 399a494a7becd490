"""TinyMetaFed: the compressed update travels compressed, and every transport agrees."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import RecordDict

from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.learner import link_buffer_bytes
from tinyfleet.device.rounds import (
    local_param_count,
    round_ram_bytes,
    run_reply_round,
    upload_array,
)
from tinyfleet.device.wire import DType, decode_message
from tinyfleet.device.wire.contract import (
    KEY_LOCAL_LAYERS,
    KEY_TOP_P,
    KEY_UPLOAD,
    RoundPlan,
)
from tinyfleet.errors import UsageError
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.run import run_in_process
from tinyfleet.server.strategies import STRATEGIES, FedAvg, TinyReptile
from tinyfleet.server.tinymetafed import TinyMetaFed, tinymetafed_plan
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

SEED, DEVICES, ROUNDS = 7, 4, 12
SPEC = get_use_case("sine").head_spec
PLAN = tinymetafed_plan(0.02, 5, top_p=0.05, local_layers=1, recon_steps=2)


def _stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def _initial() -> np.ndarray:
    return flatten(init_params(SPEC, np.random.default_rng(SEED)))


def _tinymetafed() -> TinyMetaFed:
    return TinyMetaFed(PLAN, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)


def test_plan_keys_absent_unless_used() -> None:
    plain = RoundPlan("online", 0.02, k=5)
    assert not {KEY_UPLOAD, KEY_TOP_P, KEY_LOCAL_LAYERS} & set(plain.to_config())
    assert RoundPlan.from_config(PLAN.to_config()) == PLAN
    assert PLAN.to_config()[KEY_UPLOAD] == "delta"
    with pytest.raises(UsageError):  # a sparse phi would zero what it omits
        RoundPlan("online", 0.02, top_p=0.5)
    with pytest.raises(UsageError):
        TinyMetaFed(RoundPlan("online", 0.02), num_devices=2)
    assert STRATEGIES["tinymetafed"] is TinyMetaFed


def test_upload_is_a_sparse_int8_update_without_the_local_layers() -> None:
    theta = _initial()
    phi = theta + np.linspace(-1, 1, theta.size, dtype=np.float32)
    arr = upload_array("0", theta, phi, SPEC, PLAN)
    local = local_param_count(SPEC, 1)
    assert local == 41  # the last layer of 1-40-40-1: W (40x1) + b (1)
    assert arr.dtype == DType.INT8 and arr.indices is not None
    assert arr.shape == theta.shape
    assert arr.indices.size == int(np.ceil(0.05 * (theta.size - local)))
    assert int(arr.indices.max()) < theta.size - local
    dense = arr.to_float32()
    assert np.all(dense[-local:] == 0)
    kept = arr.indices
    np.testing.assert_allclose(dense[kept], (phi - theta)[kept], atol=arr.scale)
    # Keeping theta for the update costs its shared entries on top of TinyReptile's RAM.
    online = round_ram_bytes(SPEC, RoundPlan("online", 0.02, k=5))
    keep = int(np.ceil(0.05 * (theta.size - local)))  # + their u32 indices, int8 values
    assert round_ram_bytes(SPEC, PLAN) == online + 4 * (theta.size - local) + 5 * keep


def test_device_ram_counts_the_message_buffers_alike() -> None:
    """The reported ram-bytes = learning + the whole task received + the reply and its
    frame. TinyMetaFed keeps theta (more learning RAM) but its reply is a tenth of the size,
    so with the buffers it needs LESS than TinyReptile; without them, more."""
    theta = _initial()
    rows = {}
    for name, plan in (("tiny", RoundPlan("online", 0.02, k=5)), ("tmf", PLAN)):
        config = {"round": 3, "device-index": 1, "seed": SEED, **plan.to_config()}
        task_bytes = 7000 + len(config)  # any size: the device reports what it received
        _, metrics = run_reply_round(
            theta, config, SPEC, _stream_for_device, array_name="0", device_id="sim-0001",
            task_bytes=task_bytes,
        )  # fmt: skip
        learning = round_ram_bytes(SPEC, plan)
        link = link_buffer_bytes(task_bytes, metrics["bytes-up"])
        assert metrics["ram-bytes"] == learning + link
        rows[name] = (metrics["ram-bytes"], learning)
    assert rows["tmf"][0] < rows["tiny"][0]
    assert rows["tmf"][1] > rows["tiny"][1]


def test_local_layers_never_change_and_bytes_up_is_a_tenth_of_fedavg() -> None:
    initial = _initial()
    app = make_client_app(SPEC, _stream_for_device)
    tmf = _tinymetafed()
    final, _ = run_in_process(tmf, app, DEVICES, initial, ROUNDS)
    local = local_param_count(SPEC, 1)
    assert final[-local:].tobytes() == initial[-local:].tobytes()
    assert not np.array_equal(final[:-local], initial[:-local])
    fedavg = FedAvg(
        RoundPlan("batch", 0.02, support_size=5, batch_size=1),
        num_devices=DEVICES,
        clients_per_round=2,
        seed=SEED,
        num_rounds=3,
    )
    run_in_process(fedavg, app, DEVICES, initial, 3)
    up = tmf.counters.bytes_up_total / tmf.counters.accepted_replies
    up_fedavg = fedavg.counters.bytes_up_total / fedavg.counters.accepted_replies
    assert up <= 0.1 * up_fedavg, (up, up_fedavg)
    # Down: the same dense theta for both, plus TinyMetaFed's few extra config keys.
    down = tmf.counters.bytes_down_reported_total / tmf.counters.accepted_replies
    assert down > initial.nbytes


@pytest.mark.mqtt
def test_mqtt_equals_in_process_and_the_reply_travels_compressed(broker: ManagedBroker) -> None:
    initial = _initial()
    expected_strategy = _tinymetafed()
    expected, _ = run_in_process(
        expected_strategy, make_client_app(SPEC, _stream_for_device), DEVICES, initial, ROUNDS
    )
    seen: list[tuple[object, ...]] = []

    def wrap(index: int, handler):  # record what each device puts on the wire
        def record(task):
            fields, arrays = handler(task)
            seen.append((arrays[0].dtype, arrays[0].indices is not None, dict(fields)))
            return fields, arrays

        return record

    url = f"mqtt://{broker.host}:{broker.port}"
    with run_mqtt_fleet(
        SPEC, _stream_for_device, DEVICES, broker_url=url, fleet="tmf", wrap_handler=wrap
    ) as fleet:
        strategy = _tinymetafed()
        got, _ = run_in_process(strategy, fleet.client_call, DEVICES, initial, ROUNDS)
        # The reply each device published last: decode it and measure it.
        published = {
            d.settings.device_id: b"".join(next(reversed(d._answered.values())))
            for d in fleet.devices
            if d._answered
        }
    assert got.tobytes() == expected.tobytes()
    assert len(seen) == ROUNDS
    assert all(dtype == DType.INT8 and sparse for dtype, sparse, _ in seen)
    c, e = strategy.counters, expected_strategy.counters
    assert (c.bytes_up_total, c.bytes_down_reported_total) == (
        e.bytes_up_total,
        e.bytes_down_reported_total,
    )
    for payload in published.values():  # bytes-up IS the size of the published message
        reply = decode_message(payload)
        assert reply.fields_dict()["bytes-up"] == len(payload)
        assert reply.arrays[0].indices is not None


def test_tinyreptile_reply_is_unchanged_dense_float32() -> None:
    plan = RoundPlan("online", 0.02, k=5)
    theta = _initial()
    arr = upload_array("0", theta, theta + 1, SPEC, plan)
    assert arr.dtype == DType.FLOAT32 and arr.indices is None
    TinyReptile(plan, num_devices=2)  # still accepts a plain plan


def test_theta_int8_device_and_server_correction_recover_the_update() -> None:
    """A device that keeps theta as int8 sends phi - base; the server adds base - theta
    back on the kept entries, so it applies phi - theta up to the upload's int8 step."""
    from dataclasses import replace

    from tinyfleet.device.rounds import int8_reference, round_rng, run_local_round

    plan = replace(PLAN, theta_int8=True)
    assert RoundPlan.from_config(plan.to_config()) == plan
    theta = _initial()
    phi, _ = run_local_round(theta, SPEC, _stream_for_device(SEED, 2), plan, round_rng(SEED, 2, 1))
    true = phi - theta
    arr = upload_array("0", theta, phi, SPEC, plan)
    sent = arr.to_float32()
    kept = arr.indices
    assert np.all(sent[kept] != 0) and np.count_nonzero(sent) == kept.size
    strategy = TinyMetaFed(plan, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS, beta0=1.0)
    applied = strategy.update(1, theta, [(sent, {}, RecordDict())]) - theta
    assert np.all(applied[np.setdiff1d(np.arange(theta.size), kept)] == 0)
    error = float(np.max(np.abs(applied[kept] - true[kept])))
    assert error <= 1.5 * arr.scale + 1e-6
    # The server's correction is exactly the int8 copy's error on the kept entries ...
    residual = theta - int8_reference(theta)
    np.testing.assert_allclose(applied[kept], (sent - residual)[kept], atol=1e-6)
    # ... without which the applied update would be further off.
    assert float(np.max(np.abs(sent[kept] - true[kept]))) > 2 * error
    # RAM: one byte per parameter for theta instead of four per shared one.
    online = round_ram_bytes(SPEC, RoundPlan("online", 0.02, k=5))
    keep = int(np.ceil(0.05 * (theta.size - local_param_count(SPEC, 1))))
    assert round_ram_bytes(SPEC, plan) == online + theta.size + 5 * keep
    with pytest.raises(UsageError, match="theta-int8"):
        replace(PLAN, theta_int8=True, upload_int8=False)
