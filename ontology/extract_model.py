"""Model card JSON (+ optionally its ``.tflite``) -> RDF (nnet: neural-network schema).

The card (written by ``tinyfleet export``) carries what only training/export knows: the
tensor arena measured with the TFLM interpreter and the trainable head. When the
``.tflite`` is given, it is parsed with :mod:`tinyfleet.device.tooling.tflite_model` (no
TensorFlow) and must agree with the card on size, SHA-256 and operators; its operator
list and tensor shapes then come from the file itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rdflib import RDF, Graph, Literal, URIRef

from tinyfleet.ontology.errors import DescriptionError
from tinyfleet.ontology.extract_device import add_operators, read_json
from tinyfleet.ontology.jsonfields import Fields, shape_text
from tinyfleet.ontology.namespaces import (
    NNET,
    SCHEMA,
    SSN,
    TFO,
    modality_iri,
    model_id,
    model_iri,
    operator_iri,
)

FLOAT_HEAD = "float-head"
_QUANTIZATION = {"int8": NNET.Int8, "int16": NNET.Int16, "float32": NNET.Float32}


def card_to_rdf(card: Any) -> Graph:
    """Translate a model card (dict) into RDF; raise on missing or wrongly typed fields."""
    f = Fields(card, "model card")
    name = f.text("name", required=True)
    version = f.text("version", required=True)
    kind = f.text("kind", required=True)
    assert name is not None and version is not None and kind is not None
    g = Graph()
    m = model_iri(name, version)
    g.add((m, RDF.type, NNET.NeuralNetwork))
    g.add((m, SCHEMA.identifier, Literal(model_id(name, version))))
    g.add((m, SCHEMA.name, Literal(name)))
    g.add((m, SCHEMA.version, Literal(version)))
    g.add((m, TFO.modelKind, Literal(kind)))
    g.add((m, SCHEMA.runtimePlatform, Literal("TFLite Micro")))
    use_case = f.text("use_case")
    if use_case is not None:
        g.add((m, TFO.useCase, Literal(use_case)))
    digest = f.text("sha256")
    if digest is not None:
        g.add((m, TFO.sha256, Literal(digest)))
    # A float-head model has no .tflite: nothing in flash, no arena, no operators.
    default = 0 if kind == FLOAT_HEAD else None
    for key, predicate in (
        ("flash_bytes", TFO.flashBytes),
        ("arena_bytes", TFO.arenaBytes),
        ("macs", NNET.hasMultiplyAccumulateOps),
    ):
        number = f.integer(key)
        number = default if number is None else number
        if number is not None:
            g.add((m, predicate, Literal(number)))
    add_operators(g, m, TFO.usesOperator, f.strings("operators"))
    g.add((m, TFO.modality, modality_iri(f.text("sensor") or "none")))

    for key, predicate in (("input", SSN.hasInput), ("output", SSN.hasOutput)):
        tensor = f.obj(key, required=(key == "input"))
        if tensor is not None:
            node = URIRef(f"{m}/{key}")
            g.add((m, predicate, node))
            _tensor(g, node, tensor)
            dtype = tensor.text("dtype")
            if key == "input" and dtype in _QUANTIZATION:
                g.add((m, NNET.hasQuantization, _QUANTIZATION[dtype]))

    head = f.obj("head", required=True)
    assert head is not None
    h = URIRef(f"{m}/head")
    g.add((m, TFO.hasTrainableHead, h))
    g.add((h, RDF.type, TFO.TrainableHead))
    sizes = head.data.get("layer_sizes")
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise DescriptionError("model card: 'head.layer_sizes' must be a list of positive integers")
    g.add((h, TFO.layerSizes, Literal(",".join(str(s) for s in sizes))))
    for key, predicate in (("activation", TFO.activation), ("loss", TFO.loss)):
        text = head.text(key)
        if text is not None:
            g.add((h, predicate, Literal(text)))
    for key, predicate in (("num_params", TFO.numParams), ("train_ram_bytes", TFO.trainRamBytes)):
        number = head.integer(key)
        if number is not None:
            g.add((h, predicate, Literal(number)))

    layers = card.get("layers") or []
    if not isinstance(layers, list):
        raise DescriptionError("model card: 'layers' must be a list")
    _layers(g, m, [Fields(layer, f"model card layer {i}") for i, layer in enumerate(layers)])
    return g


def _tensor(g: Graph, node: URIRef, tensor: Fields) -> None:
    g.add((node, RDF.type, TFO.TensorSpec))
    role = NNET.NetworkInput if str(node).endswith("/input") else NNET.NetworkOutput
    g.add((node, RDF.type, role))
    shape = tensor.shape("shape", required=True)
    assert shape is not None
    g.add((node, TFO.tensorShape, Literal(shape_text(shape))))
    dtype = tensor.text("dtype", required=True)
    g.add((node, TFO.dtype, Literal(dtype)))
    scale = tensor.number("scale")
    if scale is not None and scale > 0:  # float tensors carry scale 0 or none
        g.add((node, TFO.quantScale, Literal(scale)))
        zero_point = tensor.integer("zero_point")
        if zero_point is not None:
            g.add((node, TFO.quantZeroPoint, Literal(zero_point)))


def _layers(g: Graph, m: URIRef, layers: list[Fields]) -> None:
    for position, layer in enumerate(layers):
        index = layer.integer("index")
        index = position if index is None else index
        op = layer.text("op", required=True)
        assert op is not None
        node = URIRef(f"{m}/layer/{index}")
        if position == 0:
            g.add((m, NNET.inputLayer, node))
        elif position == len(layers) - 1:
            g.add((m, NNET.outputLayer, node))
        else:
            g.add((m, NNET.middleLayer, node))
        g.add((node, RDF.type, NNET.Layer))
        g.add((node, NNET.hasIndex, Literal(index)))
        g.add((node, NNET.hasLayerType, operator_iri(op)))
        for key, predicate in (("input_shapes", NNET.shapeIn), ("output_shapes", NNET.shapeOut)):
            shapes = layer.data.get(key)
            if isinstance(shapes, list) and all(isinstance(s, list) for s in shapes):
                g.add((node, predicate, Literal(";".join(shape_text(s) for s in shapes))))
        for key, predicate in (("macs", TFO.macs), ("params", TFO.numParams)):
            number = layer.integer(key)
            if number is not None:
                g.add((node, predicate, Literal(number)))
    add_operators(g, m, TFO.usesOperator, [layer.data["op"] for layer in layers])


def load_card(path: str | Path) -> Graph:
    """RDF for ``model_card.json``, or for a ``.tflite`` plus the card beside it."""
    path = Path(path)
    if path.suffix != ".tflite":
        return card_to_rdf(read_json(path))
    card_path = path.with_name("model_card.json")
    if not card_path.exists():
        raise DescriptionError(
            f"{path}: needs model_card.json beside it (the tensor arena and the head come from the card)"
        )
    card = read_json(card_path)
    return card_to_rdf(merge_tflite(card, path))


def merge_tflite(card: Any, tflite_path: Path) -> dict[str, Any]:
    """Check the card against the ``.tflite`` and take operators and shapes from the file.

    Size, SHA-256, operators, the input and output tensors (shape, dtype, scale, zero
    point) and, when the card lists layers, each layer's operator and shapes must agree;
    the first disagreement is a one-line :class:`DescriptionError`.
    """
    from tinyfleet.device.tooling.tflite_model import read_tflite_file

    try:
        data, model = read_tflite_file(tflite_path)
    except Exception as error:  # a truncated or foreign file
        raise DescriptionError(f"{tflite_path}: not a readable .tflite ({error})") from None
    merged = dict(Fields(card, "model card").data)
    digest = hashlib.sha256(data).hexdigest()
    if merged.get("sha256") not in (None, digest):
        raise DescriptionError(
            f"{tflite_path}: SHA-256 differs from model_card.json's (stale card?)"
        )
    if merged.get("flash_bytes") not in (None, len(data)):
        raise DescriptionError(
            f"{tflite_path}: size {len(data)} differs from the card's flash_bytes"
        )
    operators = sorted(set(model.operator_names))
    if merged.get("operators") not in (None, operators):
        raise DescriptionError(f"{tflite_path}: operators {operators} differ from the card's")
    main = model.main
    for key, tensors in (("input", main.input_tensors()), ("output", main.output_tensors())):
        _check_tensor(tflite_path, key, merged.get(key), tensors)
    layers = [
        {
            "index": op.index,
            "op": op.op,
            # activations only, as the card lists them (weights are constant tensors)
            "input_shapes": [
                list(main.tensor(i).shape)
                for i in op.inputs
                if i >= 0 and not main.tensor(i).is_constant
            ],
            "output_shapes": [list(main.tensor(i).shape) for i in op.outputs if i >= 0],
        }
        for op in main.operators
    ]
    if merged.get("layers"):
        _check_layers(tflite_path, merged["layers"], layers)
    else:
        merged["layers"] = layers
    merged.update(sha256=digest, flash_bytes=len(data), operators=operators)
    return merged


def _check_tensor(path: Path, key: str, spec: Any, tensors: list[Any]) -> None:
    """The card's ``input``/``output`` tensor must be the file's (only) one."""
    if not isinstance(spec, dict):
        return  # card_to_rdf reports a missing or malformed tensor
    if len(tensors) != 1:
        raise DescriptionError(f"{path}: has {len(tensors)} {key} tensors; a card describes one")
    tensor = tensors[0]
    if [int(d) for d in tensor.shape] != spec.get("shape"):
        raise DescriptionError(
            f"{path}: {key} shape {list(tensor.shape)} differs from the card's {spec.get('shape')}"
        )
    if spec.get("dtype") != tensor.dtype:
        raise DescriptionError(
            f"{path}: {key} dtype {tensor.dtype} differs from the card's {spec.get('dtype')}"
        )
    quant = tensor.quantization
    if quant is None or quant.per_channel or not spec.get("scale"):
        return
    same_scale = abs(quant.scale - float(spec["scale"])) <= 1e-6 * abs(quant.scale)
    if not same_scale or quant.zero_point != spec.get("zero_point", quant.zero_point):
        raise DescriptionError(f"{path}: {key} quantisation differs from the card's")


def _check_layers(path: Path, card_layers: Any, file_layers: list[dict[str, Any]]) -> None:
    if not isinstance(card_layers, list) or len(card_layers) != len(file_layers):
        count = len(card_layers) if isinstance(card_layers, list) else "no"
        raise DescriptionError(f"{path}: {len(file_layers)} layers, the card lists {count}")
    for card_layer, layer in zip(card_layers, file_layers, strict=True):
        for field in ("op", "input_shapes", "output_shapes"):
            if (
                isinstance(card_layer, dict)
                and field in card_layer
                and card_layer[field] != layer[field]
            ):
                raise DescriptionError(
                    f"{path}: layer {layer['index']} {field} {layer[field]} differs from the card's"
                    f" {card_layer[field]}"
                )
