"""``tinyfleet kg ...``: the knowledge graph from the command line.

Heavy imports (rdflib, pyoxigraph, pyshacl) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_STORE_ENV = "TINYFLEET_KG_STORE"


def default_store() -> Path:
    """``$TINYFLEET_KG_STORE`` or ``~/.tinyfleet/kg``."""
    return Path(os.environ.get(DEFAULT_STORE_ENV) or Path.home() / ".tinyfleet" / "kg")


def register(subparsers: Any) -> None:
    """Add ``kg`` and its subcommands to the tinyfleet parser."""
    kg = subparsers.add_parser(
        "kg",
        help="knowledge graph: models, devices, matchmaking, SPARQL",
        description=(
            "The fleet's RDF knowledge graph (SOSA/SSN, S3N, WoT TD, schema.org, PROV-O, "
            "nnet:). Data lives in a persistent Oxigraph store (--store DIR, default "
            f"${DEFAULT_STORE_ENV} or ~/.tinyfleet/kg) or on a SPARQL 1.1 server that many "
            "processes share (--store http://HOST:PORT, e.g. `kg serve`'s backend or front); "
            "every write is SHACL-validated."
        ),
    )
    sub = kg.add_subparsers(dest="kg_command", required=True, metavar="KG_COMMAND")

    def store_args(p: argparse.ArgumentParser, load: bool = True) -> None:
        p.add_argument(
            "--store",
            help="Oxigraph store directory, or the base URL of a SPARQL 1.1 Protocol server "
            "({URL}/query, {URL}/update; writes send $TINYFLEET_KG_TOKEN as bearer token)",
        )
        if load:
            p.add_argument(
                "--load",
                nargs="+",
                default=[],
                metavar="FILE",
                help="also load these files first (.ttl .jsonld .json .tflite); without "
                "--store they go to a throw-away in-memory graph",
            )

    p = sub.add_parser(
        "serve",
        help="SPARQL 1.1 Protocol endpoint at /sparql (an Oxigraph server behind a front)",
        description="Start `oxigraph serve` on the store (a directory; restarted if it "
        "crashes) on a private loopback port, or use the SPARQL server --store names by URL, "
        "and serve http://HOST:PORT/sparql in front of it: queries pass size and nesting "
        "limits and a timeout; updates need --write-token, 'Authorization: Bearer TOKEN' "
        "and a SHACL-valid result.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7878, help="port (default 7878; 0 = any free)")
    store_args(p)
    p.add_argument("--write-token", help="accept SPARQL UPDATE with this bearer token")
    p.add_argument(
        "--timeout", type=int, default=10, metavar="S", help="per-query timeout (default 10 s)"
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "validate",
        help="check files against the SHACL shapes",
        description="Parse and validate each file (RDF, device description, model card, WoT "
        "TD, round record). Exit 0 only if all conform; the store is not touched.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=_validate)

    p = sub.add_parser(
        "query",
        help="run SPARQL or a named query",
        description="Run a SPARQL SELECT (the tinyfleet prefixes tfo: nnet: schema: sosa: "
        "ssn: s3n: prov: td: ... are predeclared) or a named query with typed parameters.",
    )
    store_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("sparql", nargs="?", help="SPARQL query text (or @FILE to read it)")
    what.add_argument("--named", metavar="NAME", help="a named query (see --list)")
    what.add_argument("--list", action="store_true", help="list the named queries and exit")
    p.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="named-query parameter"
    )
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=_query)

    for name, kind, help_text in (
        (
            "add-model",
            "model",
            "add a model (MODEL.tflite with model_card.json beside it, or the card)",
        ),
        ("add-device", "device", "add a device description JSON (or a WoT Thing Description)"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text.capitalize() + ".")
        store_args(p, load=False)
        p.add_argument("files", nargs="+", type=Path, metavar="FILE")
        p.set_defaults(func=_add, kind=kind)

    p = sub.add_parser(
        "match",
        help="which devices can run and train a model, or which models a device can",
        description="Matchmaking with reasons: RAM >= arena + head training RAM, flash, "
        "operators supported by the firmware, sensor modality and input shape.",
    )
    store_args(p)
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--model", metavar="ID", help="name@version (or name for its latest)")
    side.add_argument("--device", metavar="ID", help="device_id")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=_match)

    p = sub.add_parser(
        "rederive",
        help="derive the derived data again after a load that bypassed tinyfleet",
        description="Recount every capability profile's devices and derive every model's "
        "eligible profiles (tfo:profileDeviceCount, tfo:eligibleProfile) from the facts. "
        "tinyfleet's own writes keep both in step; run this after writing around it (e.g. "
        "`oxigraph load --location DIR`, or updates sent to the Oxigraph server directly).",
    )
    store_args(p, load=False)
    p.set_defaults(func=_rederive)

    p = sub.add_parser("export", help="write the whole graph as Turtle or JSON-LD")
    store_args(p)
    p.add_argument("--format", choices=("turtle", "json-ld", "nt"), default="turtle")
    p.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    p.set_defaults(func=_export)


def _open(args: argparse.Namespace) -> Any:
    """The store the arguments name, with --load files added."""
    from tinyfleet.ontology.errors import KnowledgeGraphError
    from tinyfleet.ontology.loaders import load_description
    from tinyfleet.ontology.store import KnowledgeGraph

    loads = getattr(args, "load", [])
    if args.store is None and loads:
        kg = KnowledgeGraph.memory()
    else:
        path = args.store or default_store()
        try:
            kg = KnowledgeGraph.connect(path)
        except KnowledgeGraphError as error:  # pyoxigraph reports a locked store as OSError
            raise KnowledgeGraphError(
                f"{error}; if `tinyfleet kg serve` is using it, pass its URL as --store"
            ) from None
    descriptions = [load_description(file) for file in loads]  # all parsed before any write
    kg.add_all((d.graph, d.replace) for d in descriptions)
    return kg


def _serve(args: argparse.Namespace) -> int:
    import signal
    from contextlib import ExitStack

    from tinyfleet.ontology.endpoint import make_server
    from tinyfleet.ontology.loaders import load_description
    from tinyfleet.ontology.oxigraph_process import ManagedOxigraph
    from tinyfleet.ontology.store import KnowledgeGraph

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as Ctrl-C does: the Oxigraph child too

    signal.signal(signal.SIGTERM, stop)
    store = str(args.store or default_store())
    descriptions = [load_description(file) for file in args.load]
    with ExitStack() as stack:
        if store.startswith(("http://", "https://")):
            upstream = store
        else:
            oxigraph = stack.enter_context(ManagedOxigraph(Path(store), timeout_s=args.timeout))
            upstream = oxigraph.url
        kg = KnowledgeGraph.remote(upstream, token="")
        kg.add_all((d.graph, d.replace) for d in descriptions)
        server = make_server(upstream, args.host, args.port, args.write_token, args.timeout)
        stack.callback(server.server_close)
        mode = "read-write (token)" if args.write_token else "read-only"
        print(
            f"SPARQL endpoint {server.url} ({len(kg)} triples, {mode}; server {upstream})",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


def _validate(args: argparse.Namespace) -> int:
    from tinyfleet.errors import TinyfleetError
    from tinyfleet.ontology.loaders import load_description
    from tinyfleet.ontology.validation import violations

    failed = 0
    for file in args.files:
        try:
            description = load_description(file)
        except TinyfleetError as error:
            print(f"{file}: error: {error}")
            failed += 1
            continue
        found = violations(description.graph)
        if found:
            failed += 1
            print(f"{file}: {len(found)} violation(s)")
            for violation in found:
                print(f"  {violation}")
        else:
            print(f"{file}: ok ({description.kind}, {len(description.graph)} triples)")
    return 1 if failed else 0


def _query(args: argparse.Namespace) -> int:
    from tinyfleet.errors import UsageError
    from tinyfleet.ontology.named_queries import get_named_query, named_queries
    from tinyfleet.ontology.results import render

    if args.list:
        for query in named_queries().values():
            params = " ".join(
                f"{p.name}:{p.type}" + (f"={p.default}" if p.default is not None else "")
                for p in query.parameters
            )
            print(f"{query.name}  {params}\n    {query.summary}")
        return 0
    if args.named:
        values = {}
        for item in args.param:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--param needs KEY=VALUE, got {item!r}")
            values[key] = value
        text = get_named_query(args.named).bind(values)
    else:
        if args.param:
            raise UsageError("--param applies to --named queries only")
        text = args.sparql
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
    kg = _open(args)
    try:
        names, rows = kg.select(text)
    finally:
        kg.close()
    print(render(names, rows, args.format))
    return 0


def _add(args: argparse.Namespace) -> int:
    from tinyfleet.ontology.errors import DescriptionError
    from tinyfleet.ontology.loaders import load_description

    descriptions = [load_description(f) for f in args.files]  # parse all before writing any
    for file, description in zip(args.files, descriptions, strict=True):
        wanted = ("model",) if args.kind == "model" else ("device", "thing-description")
        if description.kind not in wanted:
            raise DescriptionError(f"{file}: is a {description.kind}, not a {args.kind}")
    kg = _open(args)
    try:  # all files or none: every one is validated before anything is written
        kg.add_all((d.graph, d.replace) for d in descriptions)
    finally:
        kg.close()
    for file, description in zip(args.files, descriptions, strict=True):
        print(f"added {file} ({description.kind}, {len(description.graph)} triples)")
    return 0


def _match(args: argparse.Namespace) -> int:
    from tinyfleet.ontology.matchmaking import match_device, match_model
    from tinyfleet.ontology.results import render

    kg = _open(args)
    try:
        if args.model:
            matches = match_model(kg, args.model)
            names = ["device", "eligible", "reasons"]
            rows = [(m.device, str(m.eligible).lower(), m.reasons) for m in matches]
        else:
            matches = match_device(kg, args.device)
            names = ["model", "eligible", "reasons"]
            rows = [(m.model, str(m.eligible).lower(), m.reasons) for m in matches]
    finally:
        kg.close()
    if args.format == "json":
        import json

        print(json.dumps([dict(zip(names, row, strict=True)) for row in rows], indent=2))
    else:
        print(render(names, rows, args.format))  # type: ignore[arg-type]
    return 0


def _rederive(args: argparse.Namespace) -> int:
    kg = _open(args)
    try:
        kg.recount_profiles()
        rows = kg.select_values(
            "SELECT (COUNT(DISTINCT ?p) AS ?profiles) (COUNT(DISTINCT ?m) AS ?models) WHERE"
            " { { ?p tfo:profileDeviceCount ?n } UNION { ?m tfo:eligibleProfilesDerived true } }"
        )
    finally:
        kg.close()
    profiles, models = rows[0]
    print(f"derived again: {profiles} capability profiles counted, {models} models linked")
    return 0


def _export(args: argparse.Namespace) -> int:
    kg = _open(args)
    try:
        text = kg.export(args.format)
    finally:
        kg.close()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
