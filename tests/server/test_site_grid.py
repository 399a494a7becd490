"""SiteGrid: each device's task goes to the SuperNode of its site, named by device-id."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX
from tinyfleet.server.gateway_flower import KEY_DEVICE_ID
from tinyfleet.server.grid import InProcessGrid
from tinyfleet.server.records import CONFIG_KEY
from tinyfleet.server.site_grid import Site, SiteError, SiteGrid, discover_sites, site_query_reply


def _task(index: int) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord([np.zeros(2, np.float32)]),
            CONFIG_KEY: ConfigRecord({KEY_DEVICE_INDEX: index}),
        }
    )
    return Message(content, dst_node_id=1000, message_type=MessageType.TRAIN, group_id="1")


def test_tasks_go_to_their_site():
    seen = []

    def call(message: Message) -> Message:
        config = message.content.config_records[CONFIG_KEY]
        seen.append((message.metadata.dst_node_id, config[KEY_DEVICE_ID]))
        return Message(RecordDict(), reply_to=message)

    inner = InProcessGrid(call, 2)
    sites = [Site(1000, "site-0", ("sim-0000", "sim-0001")), Site(1001, "site-1", ("sim-0002",))]
    grid = SiteGrid(inner, sites, ["sim-0000", "sim-0001", "sim-0002"])
    replies = list(grid.send_and_receive([_task(2), _task(0)]))
    assert len(replies) == 2
    assert seen == [(1001, "sim-0002"), (1000, "sim-0000")]
    assert list(grid.get_node_ids()) == [1000, 1001]


def test_uncovered_or_doubled_devices_are_refused():
    inner = InProcessGrid(lambda m: m, 1)
    with pytest.raises(SiteError, match="at no site"):
        SiteGrid(inner, [Site(1000, "a", ("sim-0000",))], ["sim-0000", "sim-0001"])
    with pytest.raises(SiteError, match="two sites"):
        SiteGrid(inner, [Site(1000, "a", ("x",)), Site(1001, "b", ("x",))], ["x"])


def test_discovery_asks_every_node():
    def call(message: Message) -> Message:
        node = message.metadata.dst_node_id
        return site_query_reply(message, f"site-{node - 1000}", [f"dev-{node}"])

    sites = discover_sites(InProcessGrid(call, 2), 2, timeout=5)
    assert [(s.name, s.devices) for s in sites] == [
        ("site-0", ("dev-1000",)),
        ("site-1", ("dev-1001",)),
    ]
