"""Knowledge-graph benchmark: load rate and inventory-query latency at fleet scale.

Oxigraph (the default store) is measured beside rdflib's plain in-memory store in the
same run, on the same generated inventory (tinyfleet.ontology.fleetgen: real boards,
random sensors, a dozen firmware builds) plus one or two deployments per device.

Queries (named queries of ontology/queries):
  sensor+ram  devices with >= 256 KiB RAM and a microphone that can run model M
              (devices-with-sensor-for-model)
  versions    model version per device, from the latest deployment (model-version-per-device)
  eligible    the capability profiles that can run and train model M (eligible-profiles);
              `KnowledgeGraph.eligible()` (the server's hot path) adds their devices

Usage: python benchmarks/bench_kg.py [--devices 100000] [--repeats 15] [--rdflib-repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any

from rdflib import Graph

from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.extract_model import card_to_rdf
from tinyfleet.ontology.fleetgen import generate_cards, generate_devices
from tinyfleet.ontology.named_queries import get_named_query
from tinyfleet.ontology.provenance import deployment_to_rdf
from tinyfleet.ontology.store import KnowledgeGraph


def ntriples(graphs: list[Graph]) -> str:
    lines: list[str] = []
    for graph in graphs:
        lines.extend(f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in graph)
    return "\n".join(lines) + "\n"


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, int]:
    """p50 wall time in ms over ``repeats`` runs (after one warm-up) and the result size."""
    size = len(fn())
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), size


def measure(
    backend: str,
    data: str,
    queries: dict[str, str],
    repeats: int,
    model_id: str,
    report: Callable[[str, Any], None] = lambda key, value: None,
    all_models: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Load ``data`` into a fresh store of ``backend`` and time each query."""
    gc.collect()
    kg = KnowledgeGraph.memory(backend)
    start = time.perf_counter()
    if backend == "oxigraph":
        kg.graph.parse(data=data, format="ox-ntriples")  # oxrdflib's native parser
    else:
        kg.graph.parse(data=data, format="nt")
    load_s = time.perf_counter() - start
    triples = data.count("\n")
    row: dict[str, Any] = {"load_s": load_s, "rate": triples / load_s}
    report("load_s", load_s)
    report("rate", triples / load_s)
    for name, text in queries.items():
        row[name] = timed(lambda text=text: kg.select(text)[1], repeats)  # type: ignore[misc]
        report(name, row[name])
    if backend == "oxigraph":
        row["eligible()"] = timed(lambda: kg.eligible(model_id).devices, repeats)
        per_model = []
        for model in all_models:
            per_model.append((model, *timed(lambda m=model: kg.eligible(m).devices, repeats)))  # type: ignore[misc]
        row["per_model"] = per_model
    return row


def _rdflib_child(
    data: str, queries: dict[str, str], repeats: int, model_id: str, queue: Any
) -> None:
    measure("rdflib", data, queries, repeats, model_id, lambda k, v: queue.put((k, v)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rdflib-repeats", type=int, default=1)
    parser.add_argument("--rdflib-timeout", type=float, default=300, help="seconds for rdflib")
    args = parser.parse_args()

    t0 = time.perf_counter()
    devices = generate_devices(args.devices, seed=1)
    cards = generate_cards(20, seed=1)
    graphs = [device_to_rdf(d) for d in devices] + [card_to_rdf(c) for c in cards]
    for i, d in enumerate(devices):  # one deployment each, a second one for every 10th
        card = cards[i % len(cards)]
        graphs.append(
            deployment_to_rdf(d["device_id"], f"{card['name']}@{card['version']}", 1.78e9)
        )
        if i % 10 == 0:
            graphs.append(deployment_to_rdf(d["device_id"], "model-00@1", 1.78e9 + 60))
    data = ntriples(graphs)
    del graphs
    triples = data.count("\n")
    print(
        f"inventory: {args.devices} devices, 20 models, {triples} triples "
        f"(generated in {time.perf_counter() - t0:.1f} s)"
    )

    # microphone model for the sensor+ram query; the model with the most eligible devices
    mic = next(c for c in cards if c["sensor"] == "microphone")
    mic_id = f"{mic['name']}@{mic['version']}"
    queries = {
        "sensor+ram": get_named_query("devices-with-sensor-for-model").bind(
            {"model": mic_id, "sensor": "microphone", "min_ram_kb": "256"}
        ),
        "versions": get_named_query("model-version-per-device").bind({}),
        "eligible": get_named_query("eligible-profiles").bind({"model": mic_id}),
    }

    results: dict[str, dict[str, Any]] = {
        "oxigraph": measure(
            "oxigraph",
            data,
            queries,
            args.repeats,
            mic_id,
            all_models=tuple(f"{c['name']}@{c['version']}" for c in cards),
        )
    }
    # rdflib's engine can take minutes per query at this scale (FILTER NOT EXISTS is
    # evaluated per row): run it in a child process and stop it after --rdflib-timeout s.
    queue: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(
        target=_rdflib_child, args=(data, queries, args.rdflib_repeats, mic_id, queue)
    )
    child.start()
    rdflib_row: dict[str, Any] = {}
    deadline = time.monotonic() + args.rdflib_timeout
    while len(rdflib_row) < 2 + len(queries) and time.monotonic() < deadline:
        try:
            key, value = queue.get(timeout=max(0.1, deadline - time.monotonic()))
            rdflib_row[key] = value
        except Exception:
            break
    if child.is_alive():
        child.terminate()
    child.join()
    results["rdflib"] = rdflib_row
    for backend, row in results.items():
        if "load_s" in row:
            print(f"{backend:9s} load {row['load_s']:7.2f} s  {row['rate']:>10,.0f} triples/s")

    print(f"\np50 latency (ms) at {args.devices} devices, model {mic_id}:")
    print(f"{'query':28s} {'oxigraph':>10s} {'rdflib-mem':>11s} {'speed-up':>9s} {'rows':>7s}")
    for name in queries:
        ox_ms, rows = results["oxigraph"][name]
        direct, _ = results["oxigraph"][name + " (pyoxigraph)"]
        if name in results["rdflib"]:
            rl_ms, rl_rows = results["rdflib"][name]
            assert rows == rl_rows, f"{name}: backends disagree ({rows} vs {rl_rows} rows)"
            rl_text, ratio, ratio_direct = (
                f"{rl_ms:11.1f}",
                f"{rl_ms / ox_ms:8.1f}x",
                f"{rl_ms / direct:8.1f}x",
            )
        else:
            rl_text, ratio, ratio_direct = f"{'> timeout':>11s}", f"{'':9s}", f"{'':9s}"
        print(f"{name + ' (via rdflib API)':28s} {ox_ms:10.1f} {rl_text} {ratio} {rows:7d}")
        print(f"{name + ' (pyoxigraph direct)':28s} {direct:10.1f} {'':11s} {ratio_direct}")
    hot, rows = results["oxigraph"]["eligible()"]
    print(f"{'KnowledgeGraph.eligible()':28s} {hot:10.1f} {'':11s} {'':9s} {rows:7d}")
    if "rate" in results["rdflib"]:
        ratio = results["oxigraph"]["rate"] / results["rdflib"]["rate"]
        print(f"\nload rate ratio oxigraph/rdflib: {ratio:.1f}x")
    per_model = results["oxigraph"]["per_model"]
    print("\nKnowledgeGraph.eligible() p50 per model (ms, eligible devices):")
    print("  " + ", ".join(f"{m} {ms:.0f} ({n})" for m, ms, n in per_model))
    fast = sum(1 for _m, ms, _n in per_model if ms < 50)
    print(
        f"  {fast}/{len(per_model)} models under 50 ms; median {statistics.median(ms for _m, ms, _n in per_model):.1f} ms"
    )
    target = "met" if hot < 50 else "NOT met"
    print(f"target p50 < 50 ms for matchmaking at {args.devices} devices: {target} ({hot:.1f} ms)")


if __name__ == "__main__":
    main()
