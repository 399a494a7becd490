"""The tinyfleet Flower App: what ``flwr run .`` runs (``[tool.flwr.app]`` in pyproject.toml).

``server_app`` runs every tinyfleet strategy the run config names on the Grid Flower hands
it and writes the same report as ``tinyfleet simulate`` (``report.json`` with
``strategies.NAME.final_params_sha256``) into ``out-dir``. ``client_app`` has two roles,
chosen by the SuperNode's node config:

* **simulated device** (no ``broker`` in the node config; the Simulation runtime's virtual
  SuperNodes): the device named in each Message trains on its seeded stream of the run's
  ``use-case`` (:mod:`tinyfleet.simulations.clientapp`);
* **site gateway** (node config ``broker='mqtt://HOST:PORT' site='NAME'
  devices='sim-0000,sim-0001,...'``): relays each Message to its MQTT device
  (:mod:`tinyfleet.server.gateway_flower`) and answers the ServerApp's site query with
  the devices it serves (:mod:`tinyfleet.server.site_grid`).

Run config keys (kebab-case, ``--run-config "rounds=20 seed=1"``): ``use-case``,
``strategy`` (comma-separated, or ``all``), ``rounds``, ``devices``, ``seed``, ``sites``
(> 0: route devices to the site gateways; 0: any node serves any device), ``out-dir``,
``checkpoint-dir`` (final parameters of each strategy as ``NAME.npy``), and any other
``tinyfleet simulate`` setting in kebab-case (``inner-lr``, ``k``, ``eval-points``, ...).
A value of 0 or "" means "the use case's default". Under ``flwr run`` every key declared
in ``[tool.flwr.app.config]`` arrives; other callers may pass none (defaults apply).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from tinyfleet.device.wire.topics import device_ids
from tinyfleet.errors import UsageError

LOG = logging.getLogger(__name__)

#: Run config keys this app reads itself (the rest map onto SimulationSettings fields).
OWN_KEYS = (
    "use-case",
    "strategy",
    "sites",
    "out-dir",
    "checkpoint-dir",
    "site-timeout",
    "model-card",
    "kg-store",
)
ERROR_CODE_NO_SITE = 102
DONE_FILE = "run-done.json"

server_app = ServerApp()
client_app = ClientApp()


# -- ServerApp -----------------------------------------------------------------------------
def settings_from_run_config(run_config: Mapping[str, Any]) -> Any:
    """SimulationSettings from a Flower run config (kebab-case keys; 0/"" = default)."""
    from tinyfleet.simulations.runner import ALL_STRATEGIES, SimulationSettings, settings_for
    from tinyfleet.simulations.usecase import get_use_case

    use_case = get_use_case(str(run_config.get("use-case", "sine")))
    names = {f.name for f in fields(SimulationSettings)} - {"use_case", "strategies"}
    overrides: dict[str, Any] = {}
    for key, value in run_config.items():
        if key in OWN_KEYS:
            continue
        name = key.replace("-", "_")
        if name not in names:
            raise UsageError(f"run config {key!r} is not a tinyfleet setting")
        if value in (0, "", None) and name != "seed":
            continue
        overrides[name] = value
    strategy = str(run_config.get("strategy", "all")).strip()
    if strategy and strategy != "all":
        overrides["strategies"] = tuple(s.strip() for s in strategy.split(",") if s.strip())
    elif strategy == "all":
        overrides["strategies"] = ALL_STRATEGIES
    return settings_for(use_case, **overrides), use_case


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    """Run the configured strategies on ``grid``; write the report into ``out-dir``."""
    from tinyfleet.server.run import run_with_grid
    from tinyfleet.server.site_grid import SiteGrid, discover_sites
    from tinyfleet.simulations.report import write_report
    from tinyfleet.simulations.runner import run

    config = dict(context.run_config)
    settings, use_case = settings_from_run_config(config)
    sites = int(config.get("sites", 0) or 0)
    transport = "flower-simulation"
    site_names: list[dict[str, Any]] = []
    ids = device_ids(settings.devices)
    kg = None
    if sites > 0:
        found = discover_sites(grid, sites, float(config.get("site-timeout", 120) or 120))
        kg = _fleet_knowledge(config, found, ids)
        grid = SiteGrid(grid, found, ids, observer=kg.observe if kg else None)
        transport = "flower-deployment"
        site_names = [{"site": s.name, "devices": len(s.devices)} for s in found]
    checkpoint_dir = str(config.get("checkpoint-dir", "") or "")

    def run_strategy(strategy: Any, theta0: np.ndarray, rounds: int, evaluate_fn: Any) -> Any:
        if kg is not None:
            kg.restrict(strategy, settings.seed)
        final, result = run_with_grid(strategy, grid, theta0, rounds, evaluate_fn)
        if kg is not None:
            kg.record(strategy.name, final, context.run_id)
        if checkpoint_dir:
            path = Path(checkpoint_dir)
            path.mkdir(parents=True, exist_ok=True)
            np.save(path / f"{strategy.name}.npy", final)
        return final, result

    report = run(settings, use_case=use_case, run_strategy=run_strategy)
    report["transport"] = transport
    report["settings"]["transport"] = transport
    if site_names:
        report["sites"] = site_names
    if kg is not None:
        report["knowledge_graph"] = kg.summary()
        kg.close()
    out = str(config.get("out-dir", "") or "")
    if out:
        write_report(report, Path(out))
        # Written last: tells a waiting launcher (simulations/deploy.py) the report is whole.
        done = {n: s["final_params_sha256"] for n, s in report["strategies"].items()}
        (Path(out) / DONE_FILE).write_text(json.dumps(done), encoding="utf-8")
    else:
        LOG.warning("no out-dir in the run config: report not written")
        print(json.dumps({n: s["final_params_sha256"] for n, s in report["strategies"].items()}))


class _RunKnowledge:
    """The knowledge graph in a deployment run (``model-card``, optional ``kg-store``):
    devices described by their gateways go into the graph, only the devices that can run
    and train the model are sampled, and every round is recorded (PROV-O)."""

    def __init__(self, knowledge: Any, graph: Any, ids: list[str], eligible: list[int]) -> None:
        from tinyfleet.server.fleet_kg import RecordingCall

        self.knowledge, self.graph, self.ids, self.eligible = knowledge, graph, ids, eligible
        self._replies: dict[int, Message] = {}
        self.recorder = RecordingCall(lambda m: self._replies.pop(id(m)))
        self.recorded = 0

    def observe(self, task: Message, reply: Message) -> None:
        self._replies[id(task)] = reply
        self.recorder(task)

    def restrict(self, strategy: Any, seed: int) -> None:
        from tinyfleet.server.sampling import SeededSampler

        pool = list(self.eligible)
        strategy.sampler = SeededSampler(len(self.ids), seed, eligible=lambda _round: pool)
        self.recorder.rounds.clear()

    def record(self, strategy: str, final: np.ndarray, run_id: int) -> None:
        from tinyfleet.server.fleet_kg import params_version

        self.recorded += self.knowledge.record_rounds(
            self.recorder.rounds, self.ids, strategy, f"run-{run_id}-{strategy}",
            params_version(final),
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {
            "model": str(self.knowledge.model_id),
            "eligible_devices": len(self.eligible),
            "rounds_recorded": self.recorded,
        }

    def close(self) -> None:
        self.graph.close()


def _fleet_knowledge(config: Mapping[str, Any], sites: Any, ids: list[str]) -> Any:
    card_path = str(config.get("model-card", "") or "")
    if not card_path:
        return None
    from tinyfleet.ontology.extract_device import read_json
    from tinyfleet.ontology.store import KnowledgeGraph
    from tinyfleet.server.fleet_kg import FleetKnowledge

    store = str(config.get("kg-store", "") or "")
    graph = KnowledgeGraph.open(store) if store else KnowledgeGraph.memory()
    knowledge = FleetKnowledge(graph, read_json(card_path))
    wanted = set(ids)
    for site in sites:
        knowledge.register_devices({d: v for d, v in site.descriptions.items() if d in wanted})
    eligible = knowledge.eligible_indices(ids)
    if not eligible:
        graph.close()
        raise UsageError(f"no device of the fleet can run and train {knowledge.model_id}")
    return _RunKnowledge(knowledge, graph, ids, eligible)


# -- ClientApp -----------------------------------------------------------------------------
_STATE: dict[str, Any] = {}
_LOCK = threading.Lock()


def _site_devices(node_config: Mapping[str, Any]) -> list[str]:
    return [d for d in str(node_config.get("devices", "")).split(",") if d]


def _gateway_call(context: Context) -> Any:
    """The started gateway of this site (one per ClientApp process), devices online."""
    with _LOCK:
        if "gateway" not in _STATE:
            from tinyfleet.server.gateway import GatewaySettings, MqttGateway
            from tinyfleet.server.gateway_flower import (
                GatewayClientCall,
                broker_from_node_config,
                route_by_config,
            )

            config = context.node_config
            address = broker_from_node_config(config)
            gateway = MqttGateway(
                address, GatewaySettings(fleet=str(config.get("fleet", "default")))
            )
            gateway.start()
            devices = _site_devices(config)
            gateway.wait_for_devices(devices, float(config.get("connect-timeout", 60)))
            # Their retained self-descriptions (for the knowledge graph) may come a moment
            # after their status; a device that never publishes one is just not described.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not set(devices) <= set(gateway.descriptions):
                time.sleep(0.05)
            _STATE["gateway"] = gateway
            _STATE["call"] = GatewayClientCall(gateway, route_by_config(devices))
        return _STATE["call"]


def _device_app(run_config: Mapping[str, Any]) -> ClientApp:
    """The simulated-device ClientApp of the run's use case (built once per process)."""
    name = str(run_config.get("use-case", "sine"))
    with _LOCK:
        key = f"device-app:{name}"
        if key not in _STATE:
            from tinyfleet.simulations.clientapp import make_client_app
            from tinyfleet.simulations.fleet import Fleet
            from tinyfleet.simulations.usecase import get_use_case

            use_case = get_use_case(name)
            fleet = Fleet(use_case, use_case.make_backbone())
            _STATE[key] = make_client_app(
                use_case.head_spec, fleet.stream_for_device(), fleet.macs_per_sample
            )
        app: ClientApp = _STATE[key]
        return app


def _is_gateway(context: Context) -> bool:
    return "broker" in context.node_config


@client_app.train()
def client_train(message: Message, context: Context) -> Message:
    if _is_gateway(context):
        reply: Message = _gateway_call(context)(message)
        return reply
    return _device_app(context.run_config)(message, context)


@client_app.query()
def client_query(message: Message, context: Context) -> Message:
    """A site gateway says which devices it serves (once they are online)."""
    from tinyfleet.server.site_grid import site_query_reply

    if not _is_gateway(context):
        return Message(Error(ERROR_CODE_NO_SITE, "not a site gateway"), reply_to=message)
    config = context.node_config
    try:
        _gateway_call(context)
    except Exception as error:  # noqa: BLE001 - the ServerApp reports it, one line
        return Message(
            Error(ERROR_CODE_NO_SITE, f"{type(error).__name__}: {error}"), reply_to=message
        )
    devices = _site_devices(config)
    described = _STATE["gateway"].descriptions
    return site_query_reply(
        message,
        str(config.get("site", context.node_id)),
        devices,
        {d: described[d] for d in devices if d in described},
    )
