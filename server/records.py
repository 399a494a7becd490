"""Flower record keys and the Message content of a round (the server's side of it).

Request: ``ArrayRecord "arrays"`` holding ONE float32 array, the flat head vector theta
(:func:`tinyfleet.device.head.flatten` order), plus ``ConfigRecord "config"`` with the
round contract's keys (:mod:`tinyfleet.device.wire.contract`). Reply: ``ArrayRecord
"arrays"`` holding ONE float32 array phi (same shape), plus ``MetricRecord "metrics"``.
The MQTT gateway relays the same content as wire messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from tinyfleet.errors import UsageError

ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"


def encode_train_content(theta: np.ndarray, config: Mapping[str, Any]) -> RecordDict:
    """The request content: ArrayRecord "arrays" = [theta], ConfigRecord "config"."""
    return RecordDict(
        {
            ARRAYS_KEY: vector_record(theta),
            CONFIG_KEY: ConfigRecord(dict(config)),  # type: ignore[arg-type]
        }
    )


def single_vector(record: ArrayRecord) -> np.ndarray:
    """The one float array an ArrayRecord of this contract carries (a fresh copy)."""
    if len(record) != 1:
        raise UsageError(f"expected one parameter array, got {len(record)}")
    return array_values(next(iter(record.values())))


def array_values(array: Array) -> np.ndarray:
    """``array.numpy()`` (a fresh copy) without np.load's header parse when the bytes are
    what ``np.save`` writes for the array's dtype and shape (np.load parses the header
    with ast.literal_eval on every call)."""
    data, header = array.data, _npy_header(array.dtype, tuple(array.shape))
    if array.stype == _NUMPY_STYPE and data[: len(header)] == header:
        return (
            np.frombuffer(data, dtype=array.dtype, offset=len(header)).reshape(array.shape).copy()
        )
    return np.asarray(array.numpy())


def model_vector(arrays: ArrayRecord) -> np.ndarray:
    """The global model theta: the one flat float32 array of ``arrays``."""
    if len(arrays) != 1:
        raise UsageError(f"the global model must be one flat array, got {len(arrays)}")
    return np.asarray(single_vector(arrays), dtype=np.float32)


def vector_record(vector: np.ndarray) -> ArrayRecord:
    """``ArrayRecord([vector])`` (float32): the same bytes Flower's ``np.save`` path
    writes, from a cached ``.npy`` header plus the raw little-endian values."""
    record = ArrayRecord()  # item by item: ArrayRecord(dict) would copy every Array again
    record["0"] = float32_array(vector)
    return record


def float32_array(values: np.ndarray) -> Array:
    """``Array(values)`` as float32: the bytes of Flower's ``np.save`` path, written from
    a cached ``.npy`` header plus the raw little-endian values."""
    arr = np.ascontiguousarray(values, dtype=np.float32)
    shape = tuple(int(d) for d in arr.shape)
    return Array("float32", shape, _NUMPY_STYPE, _npy_header("float32", shape) + arr.tobytes())


_NUMPY_STYPE = "numpy.ndarray"  # flwr's SType.NUMPY
_NPY_HEADERS: dict[tuple[str, tuple[int, ...]], bytes] = {}


def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """What ``np.save`` writes before the values of a C-ordered array (cached)."""
    key = (dtype, shape)
    header = _NPY_HEADERS.get(key)
    if header is None:
        empty = np.zeros(shape, dtype=dtype)
        buffer = BytesIO()
        np.save(buffer, empty, allow_pickle=False)
        header = buffer.getvalue()[: len(buffer.getvalue()) - empty.nbytes]
        _NPY_HEADERS[key] = header
    return header
