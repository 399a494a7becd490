"""An in-process Flower Grid: each Message goes straight to a "client call".

Flower's Simulation Engine polls for replies every 0.1 s (~156 ms per one-client round
measured here); this Grid calls the client synchronously inside ``send_and_receive``,
so Flower's own ``Strategy.start()`` loop runs at well under a millisecond per round.

The client call is replaceable: :class:`InProcessGrid` takes any
``client_call(message) -> reply`` callable. The default, :func:`client_app_call`, runs a
Flower ``ClientApp`` in process; an MQTT gateway passes a callable that relays the
message to a device and returns the device's reply (see docs/algorithms.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from tinyfleet.errors import UsageError

ClientCall = Callable[[Message], Message]

SERVER_NODE_ID = 1  # Flower's SUPERLINK_NODE_ID
FIRST_CLIENT_NODE_ID = 1000
IN_PROCESS_RUN_ID = 1


def client_app_call(client_app: ClientApp, run_id: int = IN_PROCESS_RUN_ID) -> ClientCall:
    """A client call that runs ``client_app`` in this process (one Context per node, kept
    across rounds as a SuperNode would)."""
    contexts: dict[int, Context] = {}

    def call(message: Message) -> Message:
        node_id = message.metadata.dst_node_id
        context = contexts.get(node_id)
        if context is None:
            context = Context(run_id, node_id, {}, RecordDict(), {})
            contexts[node_id] = context
        return client_app(message, context)

    return call


class InProcessGrid(Grid):
    """A synchronous Grid over ``num_nodes`` in-process nodes.

    Parameters
    ----------
    client_call
        ``client_call(message) -> reply``; exceptions become error replies (Flower's
        strategies then count them as failures), so one bad device never stops a run.
    num_nodes
        How many nodes ``get_node_ids`` reports (ids ``1000 .. 1000 + num_nodes - 1``).
    run_id
        The run id stamped on messages (Flower's runtimes set ``TaskIdentity`` the same way).
    max_concurrent
        How many messages of one push are in flight at once. 1 (default) calls them in
        turn; a client call that waits on remote devices (the MQTT gateway) can take
        more, so a round's M devices work at the same time. Replies keep the push order.
    """

    def __init__(
        self,
        client_call: ClientCall,
        num_nodes: int,
        run_id: int = IN_PROCESS_RUN_ID,
        max_concurrent: int = 1,
    ) -> None:
        if int(num_nodes) < 1:
            raise UsageError(f"the grid needs >= 1 node, got {num_nodes}")
        if int(max_concurrent) < 1:
            raise UsageError(f"max_concurrent must be >= 1, got {max_concurrent}")
        self.max_concurrent = int(max_concurrent)
        self.client_call = client_call
        self._node_ids = list(range(FIRST_CLIENT_NODE_ID, FIRST_CLIENT_NODE_ID + int(num_nodes)))
        self._run = Run.create_empty(run_id)
        self._replies: dict[str, Message] = {}
        self.messages_sent = 0
        self.message_errors = 0
        _set_task_identity(run_id)

    def set_run(self, run: Run) -> None:
        self._run = run
        _set_task_identity(run.run_id)

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        batch = list(messages)
        ids = []
        for message in batch:
            message_id = str(uuid4())
            # Metadata has no public setter for the id: Flower's own InMemoryGrid assigns
            # it exactly like this (flwr/superlink/grid/inmemory_grid.py, push_messages).
            message.metadata.__dict__["_message_id"] = message_id
            message.metadata.delivered_at = str(time.time())
            ids.append(message_id)
        self.messages_sent += len(batch)
        if self.max_concurrent > 1 and len(batch) > 1:
            workers = min(self.max_concurrent, len(batch))
            with ThreadPoolExecutor(workers, thread_name_prefix="grid") as pool:
                replies = list(pool.map(self._deliver, batch))
        else:
            replies = [self._deliver(message) for message in batch]
        self._replies.update(zip(ids, replies, strict=True))
        return ids

    def _deliver(self, message: Message) -> Message:
        try:
            return self.client_call(message)
        except Exception as error:  # noqa: BLE001 - a device failure is a reply
            self.message_errors += 1
            return Message(
                Error(code=1, reason=f"{type(error).__name__}: {error}"), reply_to=message
            )

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(mid) for mid in message_ids if mid in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        del timeout  # calls are synchronous
        return self.pull_messages(self.push_messages(messages))


def ensure_task_identity(run_id: int = IN_PROCESS_RUN_ID) -> None:
    """Stamp this process's Messages with ``run_id`` unless a Flower runtime already did
    (a Message cannot be made without one): for loops that make Messages outside a Grid."""
    try:
        _ = TaskIdentity.run_id
    except RuntimeError:
        _set_task_identity(run_id)


def _set_task_identity(run_id: int) -> None:
    TaskIdentity.run_id = int(run_id)
    TaskIdentity.node_id = SERVER_NODE_ID
    TaskIdentity.task_id = 1
