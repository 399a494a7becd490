"""Client CPU of the validated write path, per batch of new device descriptions.

Times ``KnowledgeGraph.add_all`` on a remote store whose server is replaced by a recorder
(every query answers no rows, every update is kept, not sent): what remains is the Python
that runs before the server's ``DELETE DATA ; INSERT DATA ; derived ops`` request (the
compiled SHACL check, collecting the batch's triples, the eligibility probe's and the
recount's text, the N-Triples text). Stage by stage too, through the functions
``add_all`` calls. No server needed::

    nice .venv/bin/python benchmarks/bench_kg_client.py --batches 4 --repeats 5

To compare two versions of the write path, run this script at both commits back to back
(``git checkout OLD -- ontology``, run, ``git checkout HEAD -- ontology``, run).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from rdflib import Graph
from rdflib.graph import DATASET_DEFAULT_GRAPH_ID

from tinyfleet.ontology import compiled_shapes, derived, remote_store
from tinyfleet.ontology.fleetgen import generate_devices
from tinyfleet.ontology.loaders import describe_json
from tinyfleet.ontology.remote_store import SparqlProtocolStore
from tinyfleet.ontology.store import KnowledgeGraph


class RecordingStore(SparqlProtocolStore):
    """A remote store without a server: queries answer no rows, updates are recorded."""

    def __init__(self) -> None:
        super().__init__("http://recorder.invalid")
        self.sent: list[str] = []

    def _post(self, url: str, text: str, content_type: str, accept: str) -> tuple[str, bytes]:
        if url == self.update_url:
            self.sent.append(text)
            return "text/plain", b""
        if accept == "text/csv":
            return "text/csv", b"s\r\n"
        return "application/n-triples", b""


def distinct(prepared: Any) -> list[tuple[Any, Any, Any]]:
    """The triples ``_prepare`` returned, as the list ``_apply`` gets (a set before the
    union index, an index since)."""
    if isinstance(prepared, set):
        return list(prepared)
    return compiled_shapes.index_triples(prepared)  # type: ignore[no-any-return]


def best_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(min, median) wall ms of ``fn`` over ``repeats`` runs."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return min(samples), statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1_000, help="devices per write")
    parser.add_argument("--batches", type=int, default=4, help="distinct batches timed")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; CPUs {os.cpu_count()}")
    devices = generate_devices(args.batch * args.batches, seed=9)
    for i, device in enumerate(devices):
        device["device_id"] = f"cli-{i:06d}"
    descriptions = [describe_json(d) for d in devices]
    batches = [
        [(d.graph, d.replace) for d in descriptions[i : i + args.batch]]
        for i in range(0, len(descriptions), args.batch)
    ]
    gc.freeze()  # the input graphs are long-lived, as in bench_kg.py
    store = RecordingStore()
    kg = KnowledgeGraph(Graph(store=store, identifier=DATASET_DEFAULT_GRAPH_ID), "remote")
    size = sum(len(g) for one in batches for g, _r in one)
    print(
        f"{len(batches)} batches of {args.batch} devices, {size / len(batches):,.0f} triples each"
    )

    def whole() -> None:
        for one in batches:
            kg.add_all(one)

    def stages() -> dict[str, float]:
        took: dict[str, float] = {}

        def clock(name: str, fn: Callable[[], Any]) -> Any:
            start = time.perf_counter()
            result = fn()
            took[name] = took.get(name, 0.0) + (time.perf_counter() - start) * 1000
            return result

        for one in batches:
            new, _roots = clock("check + collect (_prepare)", lambda o=one: kg._prepare(o, True))
            added = clock("distinct triples list", lambda n=new: distinct(n))
            clock(
                "eligibility_updates",
                lambda a=added: derived.eligibility_updates([], a, lambda q: []),
            )
            clock(
                "touched_profiles + recount text",
                lambda a=added: derived.profile_recount_update(derived.touched_profiles([], a)),
            )
            clock("N-Triples text", lambda a=added: remote_store.ntriples(a))
        return {name: ms / len(batches) for name, ms in took.items()}

    whole()  # warm: compiled shapes, caches, imports
    runs = [stages() for _ in range(args.repeats)]
    print("stage (ms per batch, min / median of runs):")
    for name in runs[0]:
        values = [run[name] for run in runs]
        print(f"  {name:34s} {min(values):7.1f} / {statistics.median(values):7.1f}")
    low, mid = best_ms(whole, args.repeats)
    print(
        f"add_all client path, ms per {args.batch}-device batch: min {low / len(batches):.1f}"
        f" median {mid / len(batches):.1f}"
    )


if __name__ == "__main__":
    main()
