"""The matchmaking rule in plain Python: the brute-force reference the SPARQL is checked
against (the product answers only from ``ontology/queries/*.rq``). Reason texts are
identical to the queries'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tinyfleet.ontology.jsonfields import shape_text


@dataclass(frozen=True)
class DeviceFacts:
    """What matchmaking needs of a device description."""

    device_id: str
    ram_bytes: int
    flash_bytes: int
    max_arena_bytes: int | None
    operators: frozenset[str]
    sensor_shapes: Mapping[str, str | None]  # modality -> declared sample shape or None

    @classmethod
    def from_description(cls, d: Mapping[str, Any]) -> DeviceFacts:
        shapes = d.get("sensor_shapes") or {}
        return cls(
            d["device_id"],
            d["ram_bytes"],
            d["flash_bytes"],
            d.get("max_arena_bytes"),
            frozenset(d.get("operators") or ()),
            {s: (shape_text(shapes[s]) if s in shapes else None) for s in d.get("sensors") or ()},
        )


@dataclass(frozen=True)
class ModelFacts:
    """What matchmaking needs of a model card."""

    model_id: str
    flash_bytes: int
    arena_bytes: int
    head_train_ram_bytes: int
    operators: frozenset[str]
    modality: str
    input_shape: str

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> ModelFacts:
        float_head = card["kind"] == "float-head"
        return cls(
            f"{card['name']}@{card['version']}",
            card.get("flash_bytes") or 0 if float_head else card["flash_bytes"],
            card.get("arena_bytes") or 0 if float_head else card["arena_bytes"],
            card["head"]["train_ram_bytes"],
            frozenset(card.get("operators") or ()),
            card.get("sensor") or "none",
            shape_text(card["input"]["shape"]),
        )


def pair_reasons(device: DeviceFacts, model: ModelFacts) -> list[str]:
    """Why ``device`` cannot run and train ``model`` (empty list: it can)."""
    reasons = []
    need = model.arena_bytes + model.head_train_ram_bytes
    if device.ram_bytes < need:
        reasons.append(
            f"RAM {device.ram_bytes} B < {need} B (arena {model.arena_bytes}"
            f" + head training {model.head_train_ram_bytes})"
        )
    if device.max_arena_bytes is not None and model.arena_bytes > device.max_arena_bytes:
        reasons.append(
            f"tensor arena {model.arena_bytes} B > device maximum {device.max_arena_bytes} B"
        )
    if device.flash_bytes < model.flash_bytes:
        reasons.append(f"flash {device.flash_bytes} B < model {model.flash_bytes} B")
    missing = sorted(model.operators - device.operators)
    if missing:
        reasons.append(f"unsupported operators: {', '.join(missing)}")
    if model.modality != "none":
        if model.modality not in device.sensor_shapes:
            reasons.append(f"no {model.modality} sensor")
        else:
            shape = device.sensor_shapes[model.modality]
            if shape is not None and shape != model.input_shape:
                reasons.append(
                    f"{model.modality} samples are {shape}, model input is {model.input_shape}"
                )
    return reasons
