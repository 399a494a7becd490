"""The knowledge graph in a federated run: which devices may train, and what happened.

Before the first round, the devices' self-descriptions (retained on MQTT) and the model
card go into the graph (each validated by SHACL; a refused description leaves its device
out, logged); :meth:`FleetKnowledge.eligible_indices` asks the matchmaking query which of
the fleet's devices can run and train the model, and the strategy's sampler draws only from
those. :class:`RecordingCall` wraps the client call and remembers every round; afterwards
:meth:`FleetKnowledge.record_rounds` writes each round as a PROV-O activity (strategy,
devices, model version in/out, metrics, bytes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Message

from tinyfleet.device.head import params_sha256
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND
from tinyfleet.errors import TinyfleetError
from tinyfleet.ontology.loaders import describe_json
from tinyfleet.ontology.matchmaking import resolve_model_id
from tinyfleet.ontology.store import KnowledgeGraph
from tinyfleet.server.records import ARRAYS_KEY, CONFIG_KEY, METRICS_KEY

LOG = logging.getLogger(__name__)
ClientCall = Callable[[Message], Message]


def params_version(theta: np.ndarray) -> str:
    """A model version for a parameter vector: 16 hex digits of its float32 SHA-256."""
    return params_sha256(theta)[:16]


@dataclass
class RoundLog:
    """What the client call saw of one round (filled by :class:`RecordingCall`)."""

    round: int
    version_in: str
    device_indices: list[int] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    failed: int = 0
    started: float = field(default_factory=time.time)
    ended: float = field(default_factory=time.time)


class RecordingCall:
    """A client call that passes every message through and logs the round it belongs to.

    Thread-safe: the grid may deliver a round's messages concurrently.
    """

    def __init__(self, call: ClientCall) -> None:
        self._call = call
        self._lock = threading.Lock()
        self.rounds: dict[int, RoundLog] = {}

    def __call__(self, message: Message) -> Message:
        content = message.content
        config = content.config_records[CONFIG_KEY]
        server_round = int(config[KEY_ROUND])  # type: ignore[arg-type]
        with self._lock:
            log = self.rounds.get(server_round)
            if log is None:
                arrays = content.array_records[ARRAYS_KEY]
                theta = next(iter(arrays.values())).numpy()
                log = self.rounds[server_round] = RoundLog(server_round, params_version(theta))
        reply = self._call(message)
        with self._lock:
            log.ended = time.time()
            if reply.has_error() or METRICS_KEY not in reply.content.metric_records:
                log.failed += 1
                return reply
            metrics = dict(reply.content.metric_records[METRICS_KEY])
            log.device_indices.append(int(config[KEY_DEVICE_INDEX]))  # type: ignore[arg-type]
            log.metrics.append({k: float(v) for k, v in metrics.items()})  # type: ignore[arg-type]
        return reply


class FleetKnowledge:
    """The run's view of the knowledge graph: eligible devices and round provenance.

    Parameters
    ----------
    kg
        The knowledge graph (in memory, or a persistent store).
    model_card
        The model card (``tinyfleet export``'s JSON) of the model being trained; it is
        added to the graph and is the model whose eligible devices train.
    """

    def __init__(self, kg: KnowledgeGraph, model_card: Mapping[str, Any]) -> None:
        self.kg = kg
        description = describe_json(dict(model_card))
        if description.kind != "model":
            raise TinyfleetError("the model card given to the server is not a model card")
        kg.add(description.graph, replace=description.replace)
        self.model_id = resolve_model_id(kg, f"{model_card['name']}@{model_card['version']}")

    def register_devices(self, descriptions: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Add device self-descriptions; return the ids the graph refused (logged)."""
        refused = []
        for device_id, doc in sorted(descriptions.items()):
            try:
                description = describe_json(dict(doc))
                self.kg.add(description.graph, replace=description.replace)
            except TinyfleetError as error:
                LOG.warning("device %s: description refused: %s", device_id, error)
                refused.append(device_id)
        return refused

    def eligible_indices(self, device_ids: Sequence[str]) -> list[int]:
        """Indices (into ``device_ids``) of the devices that can run and train the model."""
        eligible = set(self.kg.eligible(self.model_id).devices)
        return [i for i, device_id in enumerate(device_ids) if device_id in eligible]

    def record_rounds(
        self,
        rounds: Mapping[int, RoundLog],
        device_ids: Sequence[str],
        strategy: str,
        task_id: str,
        final_version: str,
    ) -> int:
        """Write each finished round as a PROV-O activity; return how many were written."""
        ordered = [rounds[r] for r in sorted(rounds)]
        written = 0
        for log, following in zip(ordered, [*ordered[1:], None], strict=True):
            if not log.device_indices:
                continue  # no device answered: nothing happened to the model
            metrics = {
                key: float(np.mean([m[key] for m in log.metrics]))
                for key in ("loss",)
                if all(key in m for m in log.metrics)
            }
            record = {
                "round": log.round,
                "strategy": strategy,
                "task_id": task_id,
                "model": self.model_id,
                "device_id": [device_ids[i] for i in log.device_indices],
                "model_version_in": log.version_in,
                "model_version_out": following.version_in if following else final_version,
                "metrics": metrics,
                "bytes_up": int(sum(m.get("bytes-up", 0) for m in log.metrics)),
                "bytes_down": int(sum(m.get("bytes-down", 0) for m in log.metrics)),
                "started": log.started,
                "ended": log.ended,
            }
            description = describe_json(record)
            self.kg.add(description.graph, replace=description.replace)
            written += 1
        return written

    def record_quarantine(self, device_id: str, server_round: int, reason: str) -> None:
        """Mark ``device_id`` quarantined (refused updates; see server/quarantine.py).

        Sets ``tfo:quarantinedInRound`` / ``tfo:quarantineReason`` on the device through a
        SHACL-validated SPARQL UPDATE (the device shape allows one of each, both or
        neither). They stay until an operator clears the device
        (``tinyfleet server quarantine clear``, :func:`clear_quarantine`).
        """
        from rdflib import Literal

        from tinyfleet.ontology.namespaces import device_iri

        device = device_iri(device_id).n3()
        self.kg.update(
            f"DELETE {{ {device} <{_ROUND}> ?r . {device} <{_REASON}> ?w }} "
            f"INSERT {{ {device} <{_ROUND}> {Literal(int(server_round)).n3()} . "
            f"{device} <{_REASON}> {Literal(str(reason)).n3()} }} "
            f"WHERE {{ OPTIONAL {{ {device} <{_ROUND}> ?r }} OPTIONAL {{ {device} <{_REASON}> ?w }} }}"
        )

    def quarantined(self) -> list[str]:
        """Device IRIs the graph holds as quarantined."""
        return [iri for iri, _round, _reason in quarantined_devices(self.kg)]


_ROUND = "https://w3id.org/tinyfleet/ontology#quarantinedInRound"
_REASON = "https://w3id.org/tinyfleet/ontology#quarantineReason"


def quarantined_devices(kg: KnowledgeGraph) -> list[tuple[str, int, str]]:
    """``(device IRI, round, reason)`` of every device the graph holds as quarantined."""
    rows = kg.query(
        f"SELECT ?d ?r ?w WHERE {{ ?d <{_ROUND}> ?r OPTIONAL {{ ?d <{_REASON}> ?w }} }} ORDER BY ?d"
    )
    return [(str(d), int(r), "" if w is None else str(w)) for d, r, w in rows]


def clear_quarantine(kg: KnowledgeGraph, device_id: str) -> int:
    """Remove ``device_id``'s quarantine marks from the graph; return the triples removed."""
    from tinyfleet.ontology.namespaces import device_iri

    device = device_iri(device_id).n3()
    _added, removed = kg.update(
        f"DELETE {{ {device} <{_ROUND}> ?r . {device} <{_REASON}> ?w }} "
        f"WHERE {{ OPTIONAL {{ {device} <{_ROUND}> ?r }} OPTIONAL {{ {device} <{_REASON}> ?w }} }}"
    )
    return removed
