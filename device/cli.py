"""Subcommands of ``tinyfleet`` owned by tinyfleet.device: ``wire decode``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tinyfleet.errors import InputFileError


def register(subparsers: Any) -> None:
    """Add this package's commands to the tinyfleet parser."""
    wire = subparsers.add_parser(
        "wire",
        help="inspect tinyfleet wire-protocol payloads",
        description="Tools for the binary MQTT payloads of docs/protocol.md.",
    )
    sub = wire.add_subparsers(dest="wire_command", required=True, metavar="SUBCOMMAND")
    decode = sub.add_parser(
        "decode",
        help="decode payloads given as hex files (as in device/wire/vectors/) and print JSON",
        description=(
            "Decode one or more payloads (hex text, whitespace ignored; '-' reads stdin). "
            "Several files are fed in order to one reassembler, so CHUNK payloads come out "
            "as the whole message. Exit status 2 with the codec's error for a bad payload."
        ),
    )
    decode.add_argument("files", nargs="+", help="hex files, or - for stdin")
    decode.add_argument(
        "--max-message-bytes", type=int, default=None, help="receiver limit (default 1 MiB)"
    )
    decode.set_defaults(func=_decode)


def _read_hex(path: str) -> bytes:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="ascii") as handle:
                text = handle.read()
        return bytes.fromhex("".join(text.split()))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path}: not a readable hex file ({error})") from None


def _decode(args: argparse.Namespace) -> int:
    from tinyfleet.device import wire

    limit = args.max_message_bytes or wire.DEFAULT_MAX_MESSAGE_BYTES
    assembler = wire.ChunkAssembler(limit)
    for path in args.files:
        message = assembler.add(_read_hex(path))
        if message is None:
            continue
        print(json.dumps(_describe(message), indent=1))
    return 0


def _describe(message: Any) -> dict[str, Any]:
    return {
        "type": message.msg_type.name,
        "round": message.round,
        "msg_id": message.msg_id,
        "device_id": message.device_id,
        "fields": dict(message.fields),
        "arrays": [
            {
                "name": a.name,
                "dtype": a.dtype.name.lower(),
                "shape": list(a.shape),
                "sparse": a.indices is not None,
                "dense_float32": [float(v) for v in a.to_float32().ravel()],
            }
            for a in message.arrays
        ],
    }
