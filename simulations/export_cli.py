"""``tinyfleet export`` and ``tinyfleet inspect``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``export`` and ``inspect`` to the tinyfleet parser."""
    export = subparsers.add_parser(
        "export",
        help="pre-train a use case's backbone, quantise it to int8 and write a model card",
        description=(
            "Pre-train the use case's backbone on classes no federated device sees, "
            "quantise it to a full-integer int8 .tflite (batch 1, per-channel weights) and "
            "write DIR/backbone.tflite plus DIR/model_card.json (shapes, quantisation, "
            "operators, flash and TFLM-measured arena bytes, MACs, trainable head); 'presence' "
            "exports an FC-only MLP on simulated rooms. For "
            "'sine' there is no backbone: only a float-head model card is written. "
            "Needs TensorFlow (the 'train' extra)."
        ),
    )
    export.add_argument(
        "use_case", metavar="USE_CASE", help="use case to export (digits, kws, presence, sine)"
    )
    export.add_argument(
        "--data-dir",
        metavar="DIR",
        help="kws: a Speech Commands folder (WORD/SPEAKER_nohash_N.wav); default: the "
        "espeak-ng corpus tinyfleet generates once",
    )
    export.add_argument("--out", required=True, metavar="DIR", help="output directory")
    export.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same bytes"
    )
    export.add_argument(
        "--epochs", type=int, default=None, help="pre-training epochs (default: the recipe's)"
    )
    export.set_defaults(func=_export)

    inspect = subparsers.add_parser(
        "inspect",
        help="print the model card of a .tflite model",
        description=(
            "Print the model card of MODEL.tflite: the model_card.json beside it when its "
            "sha256 matches the file, else a card computed from the file alone (operators, "
            "per-layer shapes, MACs and parameters, flash bytes, tensor arena measured "
            "with the TFLite Micro interpreter). No TensorFlow needed."
        ),
    )
    inspect.add_argument("model", metavar="MODEL.tflite", help="a .tflite file")
    inspect.add_argument("--json", action="store_true", help="print the card as JSON")
    inspect.set_defaults(func=_inspect)


def _export(args: argparse.Namespace) -> int:
    from tinyfleet.simulations.export import export_use_case

    card = export_use_case(
        args.use_case, args.out, seed=args.seed, epochs=args.epochs, data_dir=args.data_dir
    )
    written = (
        [card["tflite_file"], "model_card.json"] if card["tflite_file"] else ["model_card.json"]
    )
    print(f"wrote {', '.join(written)} to {args.out}")
    print(_summary(card))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from tinyfleet.device.tooling.modelcard import inspect_tflite

    card = inspect_tflite(args.model)
    print(json.dumps(card, indent=2) if args.json else _summary(card))
    return 0


def _summary(card: dict[str, Any]) -> str:
    """The card as aligned text lines."""
    lines = [
        f"name:        {card['name']} (version {card['version']}, use case {card['use_case']})",
        f"kind:        {card['kind']}",
    ]
    if card.get("sha256"):
        lines.append(f"sha256:      {card['sha256']}")
    for role in ("input", "output"):
        io = card[role]
        quant = (
            f", scale {io['scale']:.6g}, zero point {io['zero_point']}" if io.get("scale") else ""
        )
        lines.append(f"{role + ':':<12} {io['shape']} {io['dtype']}{quant}")
    lines += [
        f"operators:   {', '.join(card['operators']) or '-'}",
        f"flash:       {card['flash_bytes']} bytes",
        f"arena:       {card['arena_bytes']} bytes (TFLM)",
        f"MACs:        {card['macs']} per inference",
        f"sensor:      {card['sensor']}",
    ]
    head = card.get("head")
    if head:
        sizes = "-".join(str(n) for n in head["layer_sizes"])
        lines.append(
            f"head:        {sizes} {head['activation']} {head['loss']}, {head['num_params']} "
            f"params, {head['train_ram_bytes']} bytes to train"
        )
    if card.get("layers"):
        lines.append("layers:")
        for layer in card["layers"]:
            ins = " ".join("x".join(map(str, s)) for s in layer["input_shapes"])
            outs = " ".join("x".join(map(str, s)) for s in layer["output_shapes"])
            lines.append(
                f"  {layer['index']:>3} {layer['op']:<18} {ins:>12} -> {outs:<12} "
                f"{layer['macs']:>8} MACs {layer['params']:>7} params"
            )
    return "\n".join(lines)
