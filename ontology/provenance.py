"""Training rounds and deployments -> PROV-O.

``round_to_rdf(record)`` is what the server calls after each finished round. The record:

==================  ===========================================================
key                 value
==================  ===========================================================
round               int >= 0, the round number within its task
strategy            str, e.g. "tinyreptile", "reptile", "fedavg", "tinymetafed"
device_id           str, or list of str: the devices that took part
model_version_in    str, version of the trainable parameters sent out (theta_r)
model_version_out   str, version the round produced (theta_{r+1})
metrics             dict str -> number (loss, accuracy ...), may be empty
bytes_up            int >= 0, bytes devices -> server this round
bytes_down          int >= 0, bytes server -> devices this round
started, ended      ISO-8601 str (a zone is advised; none means UTC),
                    datetime, or float seconds since the epoch
task_id             optional str, the run the round belongs to (default "default")
model               optional str, model identifier "name@version" the task trains
==================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import XSD

from tinyfleet.ontology.errors import DescriptionError
from tinyfleet.ontology.jsonfields import Fields
from tinyfleet.ontology.namespaces import (
    PROV,
    SCHEMA,
    TFO,
    deployment_iri,
    device_iri,
    model_iri,
    model_version_iri,
    round_iri,
    task_iri,
)


def timestamp(value: Any, what: str) -> Literal:
    """An xsd:dateTime literal (UTC) from an ISO string, a datetime or epoch seconds."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DescriptionError(f"{what}: {value!r} is not an ISO-8601 timestamp") from None
    else:
        raise DescriptionError(f"{what}: needs a timestamp, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Literal(moment.astimezone(UTC), datatype=XSD.dateTime)


def split_model_id(identifier: str) -> tuple[str, str]:
    """``"name@version"`` -> ``("name", "version")``."""
    name, sep, version = identifier.partition("@")
    if not sep or not name or not version:
        raise DescriptionError(f"model identifier {identifier!r} is not of the form name@version")
    return name, version


def round_to_rdf(round_record: Mapping[str, Any]) -> Graph:
    """Translate one finished federated round (see the module doc) into PROV-O."""
    f = Fields(round_record, "round record")
    number = f.integer("round", required=True)
    strategy = f.text("strategy", required=True)
    task_id = f.text("task_id") or "default"
    assert number is not None and strategy is not None
    devices = round_record.get("device_id")
    device_ids = [devices] if isinstance(devices, str) else devices
    if not isinstance(device_ids, list) or not all(isinstance(d, str) and d for d in device_ids):
        raise DescriptionError("round record: 'device_id' must be a device id or a list of them")

    g = Graph()
    task = task_iri(task_id)
    g.add((task, RDF.type, TFO.FederatedTask))
    g.add((task, SCHEMA.identifier, Literal(task_id)))
    g.add((task, TFO.strategy, Literal(strategy)))
    model = f.text("model")
    if model is not None:
        g.add((task, TFO.trainsModel, model_iri(*split_model_id(model))))

    r = round_iri(task_id, number)
    g.add((r, RDF.type, TFO.TrainingRound))
    g.add((r, RDF.type, PROV.Activity))
    g.add((r, TFO.roundNumber, Literal(number)))
    g.add((r, TFO.strategy, Literal(strategy)))
    g.add((r, TFO.partOfTask, task))
    g.add((r, PROV.startedAtTime, timestamp(round_record.get("started"), "round record 'started'")))
    g.add((r, PROV.endedAtTime, timestamp(round_record.get("ended"), "round record 'ended'")))
    for device_id in device_ids:
        g.add((r, PROV.wasAssociatedWith, device_iri(device_id)))
    for key, predicate in (("bytes_up", TFO.bytesUp), ("bytes_down", TFO.bytesDown)):
        value = f.integer(key)
        if value is not None:
            g.add((r, predicate, Literal(value)))

    of = model_iri(*split_model_id(model)) if model is not None else None
    version_in = _version(g, task_id, f.text("model_version_in"), of)
    version_out = _version(g, task_id, f.text("model_version_out"), of)
    if version_in is not None:
        g.add((r, PROV.used, version_in))
    if version_out is not None:
        g.add((version_out, PROV.wasGeneratedBy, r))
        if version_in is not None:
            g.add((version_out, PROV.wasDerivedFrom, version_in))

    metrics = round_record.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        raise DescriptionError("round record: 'metrics' must be an object of name -> number")
    for name, value in sorted(metrics.items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DescriptionError(f"round record: metric {name!r} must be a number")
        node = URIRef(f"{r}/metric/{quote(str(name), safe='-._~')}")
        g.add((r, TFO.hasMetric, node))
        g.add((node, RDF.type, SCHEMA.PropertyValue))
        g.add((node, SCHEMA.name, Literal(str(name))))
        g.add((node, SCHEMA.value, Literal(float(value), datatype=XSD.double)))
    return g


def _version(g: Graph, task_id: str, version: str | None, of: URIRef | None) -> URIRef | None:
    """A model version node; ``of`` (the model it holds parameters for) if known."""
    if version is None:
        return None
    node = model_version_iri(task_id, version)
    g.add((node, RDF.type, TFO.ModelVersion))
    g.add((node, RDF.type, PROV.Entity))
    g.add((node, SCHEMA.version, Literal(version)))
    if of is not None:
        g.add((node, PROV.specializationOf, of))
    return node


def deployment_to_rdf(device_id: str, model: str, at: Any) -> Graph:
    """A deployment of model ``"name@version"`` on ``device_id``, finished at ``at``."""
    name, version = split_model_id(model)
    ended = timestamp(at, "deployment time")
    g = Graph()
    node = deployment_iri(device_id, name, version, str(ended))
    g.add((node, RDF.type, TFO.Deployment))
    g.add((node, RDF.type, PROV.Activity))
    g.add((node, TFO.deployedModel, model_iri(name, version)))
    g.add((node, TFO.deployedOn, device_iri(device_id)))
    g.add((node, PROV.endedAtTime, ended))
    return g
