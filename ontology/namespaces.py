"""Namespaces and IRI minting for the tinyfleet knowledge graph.

Every resource the extractors write gets a stable IRI under ``https://w3id.org/tinyfleet/id/``
built from its natural key (device_id, model name and version, ...), so re-ingesting the
same description replaces nothing and duplicates nothing.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from rdflib import RDF, RDFS, XSD, Graph, Namespace, URIRef
from rdflib.namespace import SKOS


class TermSpace(Namespace):
    """A :class:`Namespace` that makes each attribute term once (``TFO.Device is
    TFO.Device``, as rdflib's ``RDF.type`` is): descriptions then share their vocabulary's
    term objects, and the write path's dictionaries match them by identity instead of
    rdflib's ``==`` (Python code, ~1 us a call)."""

    def __getattr__(self, name: str) -> URIRef:
        term = super().__getattr__(name)
        self.__dict__[name] = term  # found there from now on: no __getattr__ call
        return term


TFO = TermSpace("https://w3id.org/tinyfleet/ontology#")
TFS = TermSpace("https://w3id.org/tinyfleet/shapes#")
ID = TermSpace("https://w3id.org/tinyfleet/id/")
NNET = TermSpace("https://w3id.org/tinyml-schema/neural-network-schema#")
S3N = TermSpace("http://w3id.org/s3n/")
SOSA = TermSpace("http://www.w3.org/ns/sosa/")
SSN = TermSpace("http://www.w3.org/ns/ssn/")
TD = TermSpace("https://www.w3.org/2019/wot/td#")
SCHEMA = TermSpace("https://schema.org/")
PROV = TermSpace("http://www.w3.org/ns/prov#")
OM = TermSpace("http://www.ontology-of-units-of-measure.org/resource/om-2/")

PREFIXES: dict[str, Namespace] = {
    "tfo": TFO,
    "tfs": TFS,
    "id": ID,
    "nnet": NNET,
    "s3n": S3N,
    "sosa": SOSA,
    "ssn": SSN,
    "td": TD,
    "schema": SCHEMA,
    "prov": PROV,
    "om": OM,
    "skos": Namespace(str(SKOS)),
}

#: the namespaces whose terms are made once (ours, and rdflib's closed ones)
_SPACES = [
    (str(ns), ns) for ns in (*PREFIXES.values(), RDF, RDFS, SKOS, XSD) if type(ns) is not Namespace
]

#: SPARQL prologue with every prefix above (plus rdf/rdfs/xsd), for ad-hoc queries; one
#: line, so that line numbers in syntax errors match the user's query.
SPARQL_PROLOGUE = " ".join(
    [f"PREFIX {name}: <{ns}>" for name, ns in PREFIXES.items()]
    + [
        "PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>",
        "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>",
        "PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>",
    ]
)

#: Sensor modalities the ontology knows (core/tinyfleet.ttl defines one individual each).
MODALITIES = (
    "camera",
    "microphone",
    "accelerometer",
    "gyroscope",
    "magnetometer",
    "temperature",
    "humidity",
    "pressure",
    "light",
    "co2",
    "gas",
    "none",
)


def bind_prefixes(graph: Graph) -> Graph:
    """Bind the tinyfleet prefixes on ``graph`` (for readable Turtle) and return it."""
    for name, namespace in PREFIXES.items():
        graph.bind(name, namespace, override=True)
    return graph


def _key(text: str) -> str:
    # Percent-encode everything outside the unreserved set so no key can break an IRI.
    return quote(text, safe="-._~")


def device_iri(device_id: str) -> URIRef:
    """IRI of the device with this ``device_id``."""
    return ID[f"device/{_key(device_id)}"]


def model_id(name: str, version: str) -> str:
    """The identifier of a model version: ``name@version``."""
    return f"{name}@{version}"


def model_iri(name: str, version: str) -> URIRef:
    """IRI of one version of a model."""
    return ID[f"model/{_key(name)}/{_key(version)}"]


# TFLite builtin operators that the nnet: schema names as layer types (skos:exactMatch).
NNET_LAYER_TYPES = {
    "AVERAGE_POOL_2D": NNET.AveragePool2D,
    "CONV_2D": NNET.Conv2D,
    "DEPTHWISE_CONV_2D": NNET.DepthwiseConv2D,
    "DEQUANTIZE": NNET.Dequantize,
    "FULLY_CONNECTED": NNET.FullyConnected,
    "LOGISTIC": NNET.Logistic,
    "MAX_POOL_2D": NNET.MaxPool2D,
    "QUANTIZE": NNET.Quantize,
    "RELU": NNET.Relu,
    "RESHAPE": NNET.Reshape,
    "RESIZE_NEAREST_NEIGHBOR": NNET.ResizeNearestNeighbor,
    "SOFTMAX": NNET.Softmax,
}


def shared_term(term: Any) -> Any:
    """The vocabulary's own object for an IRI equal to one of its terms (``TFO.ramBytes``
    for ``URIRef(".../ontology#ramBytes")``, ``RDF.type`` ...); any other term as is.
    For terms read from files (the shapes, the ontology) that are matched against the
    extractors' data: equal objects that are also identical compare without Python."""
    if type(term) is not URIRef:
        return term
    for prefix, space in _SPACES:
        local = term[len(prefix) :] if term.startswith(prefix) else ""
        if local.isidentifier() and not local.startswith("_") and not hasattr(str, local):
            try:
                found = getattr(space, local)
            except (AttributeError, ValueError):  # rdflib's closed namespaces refuse
                continue
            if type(found) is URIRef and found == term:
                return found
    return term


@lru_cache(maxsize=8192)
def shared_iri(path: str) -> URIRef:
    """``ID[path]`` made once for nodes many descriptions share (operators, firmware
    builds, capability profiles): one term object, matched by identity (see
    :class:`TermSpace`)."""
    return ID[path]


@lru_cache(maxsize=256)
def operator_iri(name: str) -> URIRef:
    """IRI of a TFLite builtin operator, e.g. ``CONV_2D``."""
    return shared_iri(f"operator/{_key(name)}")


@lru_cache(maxsize=256)
def modality_iri(name: str) -> URIRef:
    """IRI of a sensor modality individual of the core ontology."""
    return TFO[_key(name)]


def firmware_iri(name: str, version: str, operators: tuple[str, ...] | list[str]) -> URIRef:
    """IRI of a firmware build: name, version and a digest of its operator set.

    Two devices reporting the same build share one node, which keeps 100k-device
    inventories small and makes the operator check per build, not per device.
    """
    digest = hashlib.sha256("\n".join(sorted(set(operators))).encode()).hexdigest()[:12]
    return shared_iri(f"firmware/{_key(name)}/{_key(version)}/{digest}")


def task_iri(task_id: str) -> URIRef:
    """IRI of a federated task (one strategy run)."""
    return ID[f"task/{_key(task_id)}"]


def round_iri(task_id: str, round_number: int) -> URIRef:
    """IRI of round ``round_number`` of a task."""
    return ID[f"task/{_key(task_id)}/round/{round_number}"]


def model_version_iri(task_id: str, version: str) -> URIRef:
    """IRI of a version of a task's trainable parameters."""
    return ID[f"task/{_key(task_id)}/version/{_key(version)}"]


def deployment_iri(device_id: str, name: str, version: str, stamp: str) -> URIRef:
    """IRI of one deployment of a model version on a device at a time."""
    return ID[f"deployment/{_key(device_id)}/{_key(name)}/{_key(version)}/{_key(stamp)}"]


def profile_iri(digest: str) -> URIRef:
    """IRI of a capability profile (digest of the facts matchmaking checks)."""
    return shared_iri(f"profile/{digest}")
