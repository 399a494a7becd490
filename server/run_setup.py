"""What ``tinyfleet server run`` builds before its first round: the strategy from the
command line, theta_0, the model card and the fleet's knowledge graph, and the settings a
resumed run must share with its checkpoint."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from tinyfleet.errors import InputFileError


def run_fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a resumed run must share with the checkpointed one."""
    names = (
        "algorithm", "rounds", "devices", "device_prefix", "fleet", "seed", "inner_lr", "k",
        "beta0", "head", "activation", "loss", "clients_per_round", "max_update_ratio",
        "aggregate", "quarantine_after",
    )  # fmt: skip
    return {name: getattr(args, name) for name in names}


def make_server_strategy(args: argparse.Namespace, sampler: Any, on_quarantine: Any = None) -> Any:
    from tinyfleet.device.wire.contract import RoundPlan
    from tinyfleet.server.strategies import FedAvg, Reptile, TinyReptile

    guard: dict[str, Any] = {
        "max_update_ratio": args.max_update_ratio if args.max_update_ratio > 0 else None,
        "quarantine_after": args.quarantine_after if args.quarantine_after > 0 else None,
        "on_quarantine": on_quarantine,
    }

    if args.algorithm == "tinyreptile":
        plan = RoundPlan("online", inner_lr=args.inner_lr, k=args.k)
        strategy: Any = TinyReptile(
            plan,
            num_devices=args.devices,
            seed=args.seed,
            num_rounds=args.rounds,
            beta0=args.beta0,
            sampler=sampler,
            **guard,
        )
    else:
        plan = RoundPlan("batch", inner_lr=args.inner_lr, support_size=args.k, batch_size=args.k)
        cls = Reptile if args.algorithm == "reptile" else FedAvg
        strategy = cls(
            plan,
            num_devices=args.devices,
            seed=args.seed,
            num_rounds=args.rounds,
            beta0=args.beta0,
            clients_per_round=args.clients_per_round or 5,
            sampler=sampler,
            aggregate=args.aggregate,
            **guard,
        )
    return strategy


def read_card(path: str) -> dict[str, Any]:
    from tinyfleet.ontology.extract_device import read_json

    card = read_json(path)
    if not isinstance(card, dict) or "name" not in card or "version" not in card:
        raise InputFileError(f"{path}: not a model card (needs 'name' and 'version')")
    return card


def fleet_knowledge(stack: contextlib.ExitStack, store: str | None, card: dict[str, Any]) -> Any:
    from tinyfleet.ontology.store import KnowledgeGraph
    from tinyfleet.server.fleet_kg import FleetKnowledge

    kg = KnowledgeGraph.connect(store) if store else KnowledgeGraph.memory()
    stack.callback(kg.close)
    return FleetKnowledge(kg, card)


def initial_head(spec: Any, seed: int) -> Any:
    """theta_0 of a run: the same starting point as ``tinyfleet simulate`` uses."""
    from tinyfleet.server.initial import initial_head_vector

    return initial_head_vector(spec, seed)
