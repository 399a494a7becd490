"""TinyMetaFed (Ren, Li, Anicic, Runkler, arXiv 2307.06822) as a Flower strategy.

TinyReptile's server loop (ONE device per round, annealed outer step) with the device plan
that makes it TinyMetaFed (see :mod:`tinyfleet.device.wire.contract`, "What the reply
carries"):

* online learning: ``k`` fresh samples, batch 1, each dropped after its SGD step;
* partial local reconstruction: the last ``local-layers`` layers are the device's own.
  The server never changes them (their update entries are zero on the wire), so each
  round the device rebuilds them from the same starting values: the first
  ``recon-steps`` samples train only them (shared layers frozen), then all layers learn;
* Top-P% selective communication: the reply is the UPDATE ``delta = phi - theta`` of the
  shared layers, only its ``ceil(top_p * n)`` largest-magnitude entries, int8-quantised
  (``upload-int8``), as one sparse wire array. A missing entry means "no change" (this is
  why the upload must be an update: a sparse phi would zero the parameters it omits);
* outer step ``theta <- theta + beta_r * delta`` (``beta_r = beta0 * (1 - r / R)``, the
  linear anneal TinyReptile uses; the paper anneals the server step too, its exact schedule
  is our choice here, see docs/algorithms.md).

Every transport gives the same numbers: the in-process ClientApp replies with the same
dequantised float32 update an MQTT device's compressed reply turns into at the gateway
(:meth:`~tinyfleet.device.wire.types.WireArray.to_float32`).
"""

from __future__ import annotations

import numpy as np
from flwr.app import RecordDict

from tinyfleet.device.rounds import int8_reference
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.strategies import STRATEGIES, TinyReptile

DEFAULT_TOP_P = 0.05
DEFAULT_LOCAL_LAYERS = 1


def tinymetafed_plan(
    inner_lr: float,
    k: int,
    *,
    top_p: float = DEFAULT_TOP_P,
    upload_int8: bool = True,
    local_layers: int = DEFAULT_LOCAL_LAYERS,
    recon_steps: int = 0,
    arena_bytes: int = 0,
    theta_int8: bool = False,
) -> RoundPlan:
    """The device plan of a TinyMetaFed round."""
    return RoundPlan(
        "online",
        inner_lr,
        k=k,
        arena_bytes=arena_bytes,
        upload="delta",
        top_p=top_p,
        upload_int8=upload_int8,
        local_layers=local_layers,
        recon_steps=recon_steps,
        theta_int8=theta_int8,
    )


class TinyMetaFed(TinyReptile):
    """TinyReptile whose device uploads a Top-P%, int8 update of the shared layers only."""

    name = "tinymetafed"

    def __init__(self, plan: RoundPlan, **kwargs: object) -> None:
        if plan.upload != "delta" or plan.algorithm != "online":
            raise UsageError("TinyMetaFed needs an online plan that uploads the update (delta)")
        super().__init__(plan, **kwargs)

    def update(
        self,
        server_round: int,
        theta: np.ndarray,
        accepted: list[tuple[np.ndarray, dict[str, float], RecordDict]],
    ) -> np.ndarray:
        deltas = np.stack([a[0] for a in accepted])
        if self.plan.theta_int8:
            # The devices' updates are against int8_reference(theta): add back what that
            # copy lacks, on the entries they sent (non-zero by the contract).
            correction = (theta - int8_reference(theta)).astype(np.float32)
            deltas = np.where(deltas != 0, deltas - correction, deltas).astype(np.float32)
        delta = (np.sum(deltas, axis=0) / np.float32(len(accepted))).astype(np.float32)
        return (theta + np.float32(self.beta(server_round)) * delta).astype(np.float32)


STRATEGIES[TinyMetaFed.name] = TinyMetaFed
