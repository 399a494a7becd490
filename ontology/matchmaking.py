"""Can device D run and train model M? Both ways, with reasons; plus a Python reference.

A device can run and train a model iff

* RAM >= tensor arena + head training RAM (parameters + gradients + one sample),
* the arena fits the device's ``max_arena_bytes`` when it declares one,
* flash >= the model's flash bytes,
* its firmware build supports every TFLite operator the model uses,
* unless the model's modality is ``none``: it has a sensor of that modality, and that
  sensor's declared sample shape (if any) equals the model's input shape.

The SPARQL named queries (``model-devices``, ``device-models``, ``eligible-devices``) are
the implementation; :func:`pair_reasons` is the same rule in plain Python, used by the
tests as a brute-force reference. Reason texts are identical in both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tinyfleet.ontology.errors import KnowledgeGraphError
from tinyfleet.ontology.jsonfields import shape_text
from tinyfleet.ontology.named_queries import Parameter, get_named_query
from tinyfleet.ontology.namespaces import ID, TFO
from tinyfleet.ontology.store import KnowledgeGraph, with_prologue


@dataclass(frozen=True)
class Match:
    """One (device, model) pair: eligible or not, and why not ("" when eligible)."""

    device: str
    model: str
    eligible: bool
    reasons: str


def _rows(kg: KnowledgeGraph, name: str, params: dict[str, str]) -> list[tuple[Any, ...]]:
    _names, rows = kg.select(get_named_query(name).bind(params))
    return rows


def _as_bool(term: Any) -> bool:
    return bool(term.toPython()) if term is not None else False


def match_model(kg: KnowledgeGraph, model_id: str) -> list[Match]:
    """Every device and whether it can run and train ``model_id`` (model -> devices)."""
    model_id = resolve_model_id(kg, model_id)
    return [
        Match(str(device), model_id, _as_bool(ok), str(reasons or ""))
        for device, ok, reasons in _rows(kg, "model-devices", {"model": model_id})
    ]


def match_device(kg: KnowledgeGraph, device_id: str) -> list[Match]:
    """Every model and whether ``device_id`` can run and train it (device -> models)."""
    rows = _rows(kg, "device-models", {"device": device_id})
    if not rows and not kg.select(_exists_query("tfo:Device", device_id))[1]:
        raise KnowledgeGraphError(f"no device {device_id!r} in the knowledge graph")
    return [Match(device_id, str(m), _as_bool(ok), str(r or "")) for m, ok, r in rows]


def eligible_devices(kg: KnowledgeGraph, model_id: str) -> list[str]:
    """Sorted ids of the devices that can run and train ``model_id`` (``name@version``,
    or just ``name`` for its highest version). For the server's device selection.

    On an Oxigraph store this is the hot path at 100k devices: the ``eligible-profiles``
    query goes straight to pyoxigraph (no rdflib term conversion) and each eligible
    profile's devices are read from the store's index; elsewhere the ``eligible-devices``
    query answers. Both give the same list (tested).
    """
    model_id = resolve_model_id(kg, model_id)
    inner = getattr(kg.graph.store, "_inner", None)
    if kg.backend == "oxigraph" and inner is not None:
        import pyoxigraph as ox

        # the eligible profiles by SPARQL, then each profile's devices from the index
        text = get_named_query("eligible-profiles").bind({"model": model_id})
        link = ox.NamedNode(str(TFO.hasCapabilityProfile))
        prefix = len(f"{ID}device/")
        devices = []
        for solution in inner.query(with_prologue(text)):
            for quad in inner.quads_for_pattern(None, link, solution["profile"], ox.DefaultGraph()):
                devices.append(unquote(quad.subject.value[prefix:]))
        return sorted(devices)
    _names, rows = kg.select(get_named_query("eligible-devices").bind({"model": model_id}))
    return [str(row[0]) for row in rows]


def _exists_query(cls: str, identifier: str) -> str:
    term = Parameter("id", "id", None, "").to_term(identifier).n3()
    return f"SELECT ?x WHERE {{ ?x a {cls} ; schema:identifier {term} }} LIMIT 1"


def _version_key(version: str) -> tuple[Any, ...]:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.-]", version))


def resolve_model_id(kg: KnowledgeGraph, model: str) -> str:
    """``name@version`` as is (if known); a bare ``name`` -> its highest version."""
    term = Parameter("model", "id", None, "").to_term(model).n3()
    if "@" in model:
        if not kg.select(_exists_query("nnet:NeuralNetwork", model))[1]:
            raise KnowledgeGraphError(f"no model {model!r} in the knowledge graph")
        return model
    _names, rows = kg.select(
        f"SELECT ?v WHERE {{ ?m a nnet:NeuralNetwork ; schema:name {term} ; schema:version ?v }}"
    )
    if not rows:
        raise KnowledgeGraphError(f"no model named {model!r} in the knowledge graph")
    latest = max((str(row[0]) for row in rows), key=_version_key)
    return f"{model}@{latest}"


# ---------------------------------------------------------------------- Python reference
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
