"""Wire constants, enums and the decoded value types (docs/protocol.md)."""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"TFLT"
PROTOCOL_VERSION = 1
HEADER_SIZE = 32
CHUNK_PREFIX_SIZE = 12

# Bounds a C decoder can size its tables with (docs/protocol.md, "Limits").
MAX_DEVICE_ID = 64
MAX_ARRAYS = 8
MAX_NDIM = 4
MAX_FIELDS = 16
MAX_KEY = 32
MAX_STRING = 64
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
MAX_CHUNKS = 0xFFFF

_HEADER = struct.Struct("<4sBBHIIIBBBBII")
_FIELD_HEAD = struct.Struct("<BBH")
_ARRAY_HEAD = struct.Struct("<BBBB")
_CHUNK_PREFIX = struct.Struct("<HHII")


class MessageType(enum.IntEnum):
    """What a payload is; the byte at offset 5."""

    TRAIN = 1  # server -> device: train on your stream from these parameters
    EVALUATE = 2  # server -> device: evaluate these parameters
    REPLY = 3  # device -> server: result of a TRAIN or EVALUATE task
    CHUNK = 4  # one piece of a longer message
    ERROR = 5  # device -> server: the task failed (fields "code" and "reason")


class DType(enum.IntEnum):
    """Element type of an array on the wire."""

    FLOAT32 = 1
    INT8 = 2  # affine quantised: value = (q - zero_point) * scale


class FieldType(enum.IntEnum):
    """Type of one key/value field (task config or reply metrics)."""

    INT64 = 1
    FLOAT64 = 2
    BOOL = 3
    STRING = 4


ARRAY_FLAG_SPARSE = 0x01
FieldValue = int | float | bool | str


@dataclass(frozen=True, eq=False)
class WireArray:
    """One array as it travels.

    ``values`` holds the stored elements: float32 or int8, all ``size`` of them when
    dense, ``nnz`` of them at ``indices`` (flat C-order positions) when sparse.
    """

    name: str
    shape: tuple[int, ...]
    dtype: DType
    values: np.ndarray
    scale: float = 1.0
    zero_point: int = 0
    indices: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    def to_float32(self) -> np.ndarray:
        """The dense float32 array (zeros where a sparse array has no entry)."""
        if self.dtype == DType.INT8:
            # int32 subtraction is exact; then one float32 multiply (C does the same).
            vals = (self.values.astype(np.int32) - np.int32(self.zero_point)).astype(
                np.float32
            ) * np.float32(self.scale)
        else:
            vals = self.values.astype(np.float32, copy=True)
        if self.indices is None:
            return vals.reshape(self.shape)
        dense = np.zeros(self.size, dtype=np.float32)
        dense[self.indices] = vals
        return dense.reshape(self.shape)


@dataclass(frozen=True, eq=False)
class WireMessage:
    """A decoded TRAIN / EVALUATE / REPLY / ERROR message."""

    msg_type: MessageType
    round: int
    msg_id: int
    device_id: str
    fields: tuple[tuple[str, FieldValue], ...] = ()
    arrays: tuple[WireArray, ...] = ()

    def fields_dict(self) -> dict[str, FieldValue]:
        return dict(self.fields)

    def array(self, name: str) -> WireArray:
        for arr in self.arrays:
            if arr.name == name:
                return arr
        raise KeyError(name)


@dataclass(frozen=True)
class Chunk:
    """One decoded CHUNK message: ``data`` is bytes ``[offset, offset+len)`` of the inner
    encoded message, which is ``total_len`` bytes long and split into ``count`` chunks."""

    round: int
    msg_id: int
    device_id: str
    index: int
    count: int
    total_len: int
    offset: int
    data: bytes


def pad4(n: int) -> int:
    """Zero bytes that pad ``n`` bytes to a multiple of 4."""
    return (-n) % 4
