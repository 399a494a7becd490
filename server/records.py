"""Flower record keys and the Message content of a round (the server's side of it).

Request: ``ArrayRecord "arrays"`` holding ONE float32 array, the flat head vector theta
(:func:`tinyfleet.device.head.flatten` order), plus ``ConfigRecord "config"`` with the
round contract's keys (:mod:`tinyfleet.device.wire.contract`). Reply: ``ArrayRecord
"arrays"`` holding ONE float32 array phi (same shape), plus ``MetricRecord "metrics"``.
The MQTT gateway relays the same content as wire messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from tinyfleet.errors import UsageError

ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"


def encode_train_content(theta: np.ndarray, config: Mapping[str, Any]) -> RecordDict:
    """The request content: ArrayRecord "arrays" = [theta], ConfigRecord "config"."""
    return RecordDict(
        {
            ARRAYS_KEY: ArrayRecord([np.asarray(theta, dtype=np.float32)]),
            CONFIG_KEY: ConfigRecord(dict(config)),  # type: ignore[arg-type]
        }
    )


def single_vector(record: ArrayRecord) -> np.ndarray:
    """The one float array an ArrayRecord of this contract carries."""
    arrays = record.to_numpy_ndarrays()
    if len(arrays) != 1:
        raise UsageError(f"expected one parameter array, got {len(arrays)}")
    return np.asarray(arrays[0])
