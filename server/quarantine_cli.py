"""``tinyfleet server quarantine list|clear``: the operator's view of quarantined devices.

A device whose updates were refused ``--quarantine-after`` times is no longer sampled
(server/quarantine.py). That fact lives in two places: the run's checkpoint (what the
strategy obeys when the run resumes) and the knowledge graph (``tfo:quarantinedInRound``,
``tfo:quarantineReason``: what operators and SPARQL clients see). ``clear`` removes it
from both, so the resumed run samples the device again and the SPARQL row is gone.
Run it while the server is stopped (a running server rewrites its checkpoint).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tinyfleet.errors import UsageError


def register(sub: Any) -> None:
    """Add ``server quarantine`` to the ``server`` subcommands ``sub``."""
    quarantine = sub.add_parser(
        "quarantine",
        help="list or clear quarantined devices (checkpoint and knowledge graph)",
        description=(
            "A device whose updates were refused --quarantine-after times is not sampled "
            "again. 'list' shows the quarantined devices of a checkpointed run (and of the "
            "knowledge graph with --kg-store); 'clear DEVICE_ID' lets one train again: it "
            "is removed from the checkpoint's quarantine (the run continues with "
            "`server run --checkpoint DIR --resume`) and its tfo:quarantinedInRound / "
            "tfo:quarantineReason leave the graph. Run it while the server is stopped."
        ),
    )
    action = quarantine.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")
    listing = action.add_parser("list", help="quarantined devices, one JSON object")
    clear = action.add_parser("clear", help="let DEVICE_ID train again")
    clear.add_argument("device_id", metavar="DEVICE_ID", help="e.g. sim-0003")
    for parser in (listing, clear):
        parser.add_argument(
            "--checkpoint", metavar="DIR", required=True, help="the run's --checkpoint DIR"
        )
        parser.add_argument(
            "--kg-store",
            metavar="DIR|URL",
            default=None,
            help="the run's --kg-store (Oxigraph directory or SPARQL server URL)",
        )
    listing.set_defaults(func=_list)
    clear.set_defaults(func=_clear)


def _fleet_ids(settings: dict[str, Any], directory: str) -> list[str]:
    """The device ids of a checkpointed ``server run`` (from its saved settings)."""
    from tinyfleet.device.wire.topics import device_ids

    if "devices" not in settings or "device_prefix" not in settings:
        raise UsageError(f"{directory}: not a `tinyfleet server run` checkpoint")
    return device_ids(int(settings["devices"]), str(settings["device_prefix"]))


def _open_graph(store: str | None) -> Any:
    if store is None:
        return None
    from tinyfleet.ontology.store import KnowledgeGraph

    if "://" not in store and not Path(store).is_dir():
        raise UsageError(f"--kg-store {store}: no such store directory")
    return KnowledgeGraph.connect(store)


def _list(args: argparse.Namespace) -> int:
    from tinyfleet.server import checkpoint
    from tinyfleet.server.fleet_kg import quarantined_devices

    state, settings = checkpoint.read_quarantine(Path(args.checkpoint))
    ids = _fleet_ids(settings, args.checkpoint)
    reasons = state.get("reasons", {})
    out: dict[str, Any] = {
        "checkpoint": [
            {"device_id": ids[int(d)], "round": int(r), "reason": reasons.get(d, "")}
            for d, r in sorted(state.get("quarantined", {}).items(), key=lambda kv: int(kv[0]))
        ]
    }
    kg = _open_graph(args.kg_store)
    if kg is not None:
        try:
            out["knowledge_graph"] = [
                {"device": iri, "round": r, "reason": reason}
                for iri, r, reason in quarantined_devices(kg)
            ]
        finally:
            kg.close()
    print(json.dumps(out, indent=1))
    return 0


def _clear(args: argparse.Namespace) -> int:
    from tinyfleet.ontology.namespaces import device_iri
    from tinyfleet.server import checkpoint
    from tinyfleet.server.fleet_kg import clear_quarantine, quarantined_devices

    directory = Path(args.checkpoint)
    _state, settings = checkpoint.read_quarantine(directory)
    ids = _fleet_ids(settings, args.checkpoint)
    if args.device_id not in ids:
        raise UsageError(f"{args.device_id!r} is not a device of the checkpointed fleet")
    kg = _open_graph(args.kg_store)
    try:
        in_graph = kg is not None and any(
            iri == str(device_iri(args.device_id)) for iri, _r, _w in quarantined_devices(kg)
        )
        in_checkpoint = checkpoint.clear_quarantine(directory, ids.index(args.device_id))
        if not (in_checkpoint or in_graph):
            raise UsageError(f"{args.device_id} is not quarantined; nothing changed")
        removed = clear_quarantine(kg, args.device_id) if in_graph else 0
    finally:
        if kg is not None:
            kg.close()
    print(
        f"{args.device_id}: cleared (checkpoint: {'yes' if in_checkpoint else 'was not there'}; "
        f"knowledge graph: {removed} triples removed)"
    )
    return 0
