"""Run a strategy through a transport: in process (fast) or Flower's Simulation Engine.

Both run Flower's own ``Strategy.start()`` loop; only the Grid differs. For the same
seed they give bit-identical parameters (tests/server/test_transports.py).

To drive real devices, build an :class:`~tinyfleet.server.grid.InProcessGrid` with a
client call that relays each Message (e.g. over MQTT) and call :func:`run_with_grid`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result

from tinyfleet.errors import UsageError
from tinyfleet.server.grid import ClientCall, InProcessGrid, client_app_call
from tinyfleet.server.strategies import FleetStrategy

EvaluateFn = Callable[[int, ArrayRecord], MetricRecord | None]
TRANSPORTS = ("inproc", "simulation", "mqtt")


def quiet_flower(level: int = logging.WARNING) -> None:
    """Flower logs every round at INFO; keep long runs quiet."""
    logging.getLogger("flwr").setLevel(level)


def run_with_grid(
    strategy: FleetStrategy,
    grid: Grid,
    initial: np.ndarray,
    num_rounds: int,
    evaluate_fn: EvaluateFn | None = None,
) -> tuple[np.ndarray, Result]:
    """``strategy.start(grid, ...)``; returns the final flat parameters and Flower's Result."""
    result = strategy.start(
        grid,
        ArrayRecord([np.asarray(initial, dtype=np.float32)]),
        num_rounds=int(num_rounds),
        evaluate_fn=evaluate_fn,
    )
    final = result.arrays.to_numpy_ndarrays() if len(result.arrays) else [initial]
    return np.asarray(final[0], dtype=np.float32), result


def run_in_process(
    strategy: FleetStrategy,
    client: ClientApp | ClientCall,
    num_nodes: int,
    initial: np.ndarray,
    num_rounds: int,
    evaluate_fn: EvaluateFn | None = None,
    max_concurrent: int = 1,
) -> tuple[np.ndarray, Result]:
    """Run on an :class:`InProcessGrid`; ``client`` is a ClientApp or a client call.

    ``max_concurrent`` > 1 lets a round's devices work at the same time (for client calls
    that wait on remote devices, e.g. the MQTT gateway); the numbers do not change, as
    the strategies order replies by device index.
    """
    call = client_app_call(client) if isinstance(client, ClientApp) else client
    grid = InProcessGrid(call, num_nodes, max_concurrent=max_concurrent)
    return run_with_grid(strategy, grid, initial, num_rounds, evaluate_fn)


def run_in_simulation_engine(
    strategy: FleetStrategy,
    client_app: ClientApp,
    num_nodes: int,
    initial: np.ndarray,
    num_rounds: int,
    evaluate_fn: EvaluateFn | None = None,
    backend_config: dict[str, Any] | None = None,
) -> tuple[np.ndarray, Result]:
    """Run under ``flwr.simulation.run_simulation`` with ``num_nodes`` virtual SuperNodes
    (one per simulated device). Slow per round (the engine polls every 0.1 s)."""
    import os

    # The engine's Ray workers import TensorFlow (Flower's GPU-growth helper): keep its
    # C++ start-up banner out of the user's terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from flwr.simulation import run_simulation

    outcome: dict[str, Any] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        del context  # everything comes from the strategy object
        outcome["value"] = run_with_grid(strategy, grid, initial, num_rounds, evaluate_fn)

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=int(num_nodes),
        backend_config=backend_config
        or {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": 1}},
    )
    if "value" not in outcome:
        raise UsageError("the Flower Simulation Engine run ended without a result (see log)")
    value: tuple[np.ndarray, Result] = outcome["value"]
    return value
