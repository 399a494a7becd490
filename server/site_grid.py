"""Sites behind Flower's Deployment Engine: which gateway SuperNode serves which device.

Under ``flwr run`` on a deployment federation, each *site* is one gateway SuperNode
(:mod:`tinyfleet.server.gateway_flower`) in front of one MQTT broker and its devices. The
strategies address devices by index (``device-index`` in the config) and put each
Message on ``nodes[index % len(nodes)]``; that is right when every node can serve every
device (in process, Simulation Engine) but not when a device lives at one site only.

:func:`discover_sites` asks every SuperNode (a Flower ``query`` Message) which devices it
serves; :class:`SiteGrid` wraps the ServerApp's Grid, sends each Message to the node of
its device and names the device (``device-id``) for the gateway's routing. It also polls
for replies every few milliseconds: Flower's ``HttpGrid.send_and_receive`` sleeps 3 s
between pulls, which would cost 3 s per round.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX
from tinyfleet.errors import TinyfleetError
from tinyfleet.server.gateway_flower import KEY_DEVICE_ID
from tinyfleet.server.records import CONFIG_KEY

SITE_KEY = "site"
SITE_RECORD = "site"
DEVICES_KEY = "devices"
DESCRIPTIONS_KEY = "descriptions"  # JSON {device id: self-description} (knowledge graph)


class SiteError(TinyfleetError):
    """A site did not answer, or the sites do not cover the fleet."""


@dataclass(frozen=True)
class Site:
    """One gateway SuperNode: its node id, name and the device ids it serves."""

    node_id: int
    name: str
    devices: tuple[str, ...]
    descriptions: Mapping[str, Any] = field(default_factory=dict)


def site_query_reply(
    message: Message,
    site: str,
    devices: Sequence[str],
    descriptions: Mapping[str, Any] | None = None,
) -> Message:
    """The gateway's answer to a site query: ConfigRecord ``site`` {site, devices,
    descriptions (the devices' retained self-descriptions, JSON)}."""
    record = ConfigRecord(
        {
            SITE_KEY: str(site),
            DEVICES_KEY: ",".join(devices),
            DESCRIPTIONS_KEY: json.dumps(dict(descriptions or {})),
        }
    )
    return Message(RecordDict({SITE_RECORD: record}), reply_to=message)


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> list[int]:
    """Node ids once ``count`` SuperNodes have registered (sorted Python ints)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= count:
            return nodes
        if time.monotonic() > deadline:
            raise SiteError(
                f"only {len(nodes)} of {count} site SuperNodes joined in {timeout:.0f} s"
            )
        time.sleep(0.1)


def discover_sites(grid: Grid, count: int, timeout: float = 120.0) -> list[Site]:
    """Ask each of ``count`` SuperNodes which devices it serves (Flower ``query``)."""
    nodes = wait_for_nodes(grid, count, timeout)
    queries = [
        Message(RecordDict(), dst_node_id=node, message_type=MessageType.QUERY, group_id="sites")
        for node in nodes
    ]
    replies = list(fast_send_and_receive(grid, queries, timeout))
    sites = []
    for reply in replies:
        node = int(reply.metadata.src_node_id)
        if reply.has_error():
            raise SiteError(f"site node {node}: {reply.error.reason}")
        record = reply.content.config_records.get(SITE_RECORD)
        if record is None:
            raise SiteError(f"node {node} is not a tinyfleet gateway (no site record)")
        devices = tuple(d for d in str(record[DEVICES_KEY]).split(",") if d)
        described = json.loads(str(record.get(DESCRIPTIONS_KEY, "{}")))
        sites.append(Site(node, str(record[SITE_KEY]), devices, described))
    if len(sites) < len(nodes):
        raise SiteError(f"{len(nodes) - len(sites)} site(s) did not answer in {timeout:.0f} s")
    return sorted(sites, key=lambda s: s.name)


def fast_send_and_receive(
    grid: Grid, messages: Iterable[Message], timeout: float | None = None
) -> list[Message]:
    """Push, then pull every 5-50 ms until every reply is in or ``timeout`` passes."""
    return _pull_all(grid, set(grid.push_messages(messages)), timeout)


def _pull_all(grid: Grid, wanted: set[str], timeout: float | None) -> list[Message]:
    replies: list[Message] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.005
    while wanted:
        got = list(grid.pull_messages(wanted))
        replies.extend(got)
        wanted.difference_update(m.metadata.reply_to_message_id for m in got)
        if not wanted or (deadline is not None and time.monotonic() > deadline):
            break
        time.sleep(pause)
        pause = min(pause * 1.5, 0.05)
    return replies


class SiteGrid(Grid):
    """A Grid that routes each device's Message to its site's SuperNode.

    ``device_ids[i]`` is the id of device index ``i``; ``sites`` say where each id lives.
    """

    def __init__(
        self,
        grid: Grid,
        sites: Sequence[Site],
        device_ids: Sequence[str],
        observer: Callable[[Message, Message], None] | None = None,
    ) -> None:
        self.grid = grid
        self.observer = observer  # sees (task, reply) pairs, e.g. to record rounds
        self.sites = list(sites)
        where: dict[str, int] = {}
        for site in self.sites:
            for device in site.devices:
                if device in where:
                    raise SiteError(f"device {device} is served by two sites")
                where[device] = site.node_id
        missing = [d for d in device_ids if d not in where]
        if missing:
            raise SiteError(
                f"{len(missing)} device(s) are at no site (first: {missing[0]}); "
                f"sites: {', '.join(s.name for s in self.sites)}"
            )
        self.device_ids = list(device_ids)
        self.node_of: Mapping[str, int] = where

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return [s.node_id for s in self.sites]

    def _routed(self, message: Message) -> Message:
        content = message.content
        config = content.config_records.get(CONFIG_KEY)
        if config is None or KEY_DEVICE_INDEX not in config:
            return message
        index = int(config[KEY_DEVICE_INDEX])  # type: ignore[arg-type]
        if not 0 <= index < len(self.device_ids):
            raise SiteError(f"device index {index} outside the fleet of {len(self.device_ids)}")
        device = self.device_ids[index]
        entries = dict(config)
        entries[KEY_DEVICE_ID] = device
        routed = RecordDict(dict(content.items()))
        routed[CONFIG_KEY] = ConfigRecord(entries)
        meta = message.metadata
        return Message(
            routed,
            dst_node_id=self.node_of[device],
            message_type=meta.message_type,
            group_id=meta.group_id,
            ttl=meta.ttl,
        )

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages([self._routed(m) for m in messages])

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        if self.observer is None:
            return fast_send_and_receive(self, messages, timeout)
        tasks = [self._routed(m) for m in messages]
        ids = list(self.grid.push_messages(tasks))
        replies = _pull_all(self.grid, set(ids), timeout)
        by_id = dict(zip(ids, tasks, strict=True))
        for reply in replies:
            task = by_id.get(reply.metadata.reply_to_message_id)
            if task is not None:
                self.observer(task, reply)
        return replies
