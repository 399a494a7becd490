"""Codec errors: every encode/decode failure is a :class:`CodecError` (or a subclass)."""

from __future__ import annotations

from tinyfleet.errors import TinyfleetError


class CodecError(TinyfleetError):
    """A payload cannot be encoded or decoded. Every codec failure is one of these."""

    #: Stable name used in ``device/wire/vectors/index.json`` (``expect_error``).
    code = "codec"


class TruncatedError(CodecError):
    """Fewer bytes than the header or a length field promises."""

    code = "truncated"


class BadMagicError(CodecError):
    """The payload does not start with ``TFLT``."""

    code = "bad_magic"


class UnsupportedVersionError(CodecError):
    """The protocol version byte is not one this codec speaks."""

    code = "unsupported_version"


class BadMessageTypeError(CodecError):
    """Unknown message type byte."""

    code = "bad_message_type"


class OversizedError(CodecError):
    """The message is longer than the receiver's limit."""

    code = "oversized"


class BadCrcError(CodecError):
    """CRC32 mismatch: the bytes were corrupted."""

    code = "bad_crc"


class MalformedError(CodecError):
    """The structure inside a CRC-valid message is inconsistent (bad counts, sizes, pad)."""

    code = "malformed"


class ChunkError(CodecError):
    """Chunks do not fit together (inconsistent totals, overlaps, unknown message)."""

    code = "chunk"


ERRORS_BY_CODE: dict[str, type[CodecError]] = {
    cls.code: cls
    for cls in (
        CodecError,
        TruncatedError,
        BadMagicError,
        UnsupportedVersionError,
        BadMessageTypeError,
        OversizedError,
        BadCrcError,
        MalformedError,
        ChunkError,
    )
}
