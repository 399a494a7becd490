"""The wire contract: the bytes and keys the server and every device agree on.

The single source of truth for the wire format (``docs/protocol.md`` describes the same
bytes for the C firmware; ``vectors/`` beside this file holds the test vectors that both
implementations must pass) and for the round contract (config keys a device understands,
metrics it reports). Both sides import it; it imports nothing of theirs (only numpy and
the root error class ``tinyfleet.errors``).

Modules: :mod:`~.types` (constants, enums, decoded values), :mod:`~.errors`,
:mod:`~.encode`, :mod:`~.decode`, :mod:`~.chunks` (reassembly), :mod:`~.compress`
(int8 and Top-P% sparse arrays), :mod:`~.quant` (int8 rounding rules), :mod:`~.topics`,
:mod:`~.contract` (round plan, config and metric keys). Everything public is re-exported
here: ``from tinyfleet.device import wire; wire.encode_message(...)``.
"""

from tinyfleet.device.wire.chunks import ChunkAssembler
from tinyfleet.device.wire.compress import float32_array, int8_array, quantize_int8, sparse_top_p
from tinyfleet.device.wire.decode import Header, decode, decode_message, peek_header
from tinyfleet.device.wire.encode import encode_chunk, encode_message, split_message
from tinyfleet.device.wire.errors import (
    ERRORS_BY_CODE,
    BadCrcError,
    BadMagicError,
    BadMessageTypeError,
    ChunkError,
    CodecError,
    MalformedError,
    OversizedError,
    TruncatedError,
    UnsupportedVersionError,
)
from tinyfleet.device.wire.topics import TOPIC_KINDS, TOPIC_ROOT, parse_topic, topic
from tinyfleet.device.wire.types import (
    ARRAY_FLAG_SPARSE,
    CHUNK_PREFIX_SIZE,
    DEFAULT_MAX_MESSAGE_BYTES,
    HEADER_SIZE,
    MAGIC,
    MAX_ARRAYS,
    MAX_CHUNKS,
    MAX_DEVICE_ID,
    MAX_FIELDS,
    MAX_KEY,
    MAX_NDIM,
    MAX_STRING,
    PROTOCOL_VERSION,
    Chunk,
    DType,
    FieldType,
    FieldValue,
    MessageType,
    WireArray,
    WireMessage,
)

__all__ = [
    "ARRAY_FLAG_SPARSE",
    "CHUNK_PREFIX_SIZE",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ERRORS_BY_CODE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_ARRAYS",
    "MAX_CHUNKS",
    "MAX_DEVICE_ID",
    "MAX_FIELDS",
    "MAX_KEY",
    "MAX_NDIM",
    "MAX_STRING",
    "PROTOCOL_VERSION",
    "TOPIC_KINDS",
    "TOPIC_ROOT",
    "BadCrcError",
    "BadMagicError",
    "BadMessageTypeError",
    "Chunk",
    "ChunkAssembler",
    "ChunkError",
    "CodecError",
    "DType",
    "FieldType",
    "FieldValue",
    "Header",
    "MalformedError",
    "MessageType",
    "OversizedError",
    "TruncatedError",
    "UnsupportedVersionError",
    "WireArray",
    "WireMessage",
    "decode",
    "decode_message",
    "encode_chunk",
    "encode_message",
    "float32_array",
    "int8_array",
    "parse_topic",
    "peek_header",
    "quantize_int8",
    "sparse_top_p",
    "split_message",
    "topic",
]
