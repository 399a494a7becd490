"""Every named query on inline Turtle, with the exact expected rows, on both backends."""

from __future__ import annotations

import pytest
from rdflib import Graph

from tinyfleet.ontology.errors import ParameterError, QuerySyntaxError
from tinyfleet.ontology.named_queries import get_named_query, named_queries
from tinyfleet.ontology.results import plain
from tinyfleet.ontology.store import KnowledgeGraph

TURTLE = """
@prefix tfo: <https://w3id.org/tinyfleet/ontology#> .
@prefix schema: <https://schema.org/> .
@prefix s3n: <http://w3id.org/s3n/> .
@prefix sosa: <http://www.w3.org/ns/sosa/> .
@prefix ssn: <http://www.w3.org/ns/ssn/> .
@prefix nnet: <https://w3id.org/tinyml-schema/neural-network-schema#> .
@prefix prov: <http://www.w3.org/ns/prov#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix : <urn:t:> .
@prefix dev: <https://w3id.org/tinyfleet/id/device/> .

:CONV rdfs:label "CONV_2D" . :FC rdfs:label "FULLY_CONNECTED" .
:AVG rdfs:label "AVERAGE_POOL_2D" . :DW rdfs:label "DEPTHWISE_CONV_2D" .
:F1 a tfo:Firmware ; schema:name "fw" ; schema:softwareVersion "1" ; tfo:supportsOperator :CONV, :FC .
:F2 a tfo:Firmware ; schema:name "fw" ; schema:softwareVersion "2" ; tfo:supportsOperator :FC .

dev:a-1 a tfo:Device ; tfo:hasCapabilityProfile :pa ; schema:identifier "a-1" ; tfo:board "Board A" ; tfo:ramBytes 262144 ; tfo:flashBytes 1048576 ;
   tfo:hasMicrocontroller [ schema:name "MCU-A" ] ; tfo:hasFirmware :F1 ;
   tfo:hasSensor [ sosa:observes tfo:microphone ], [ sosa:observes tfo:camera ; tfo:sampleShape "1x8x8x1" ] .
dev:b-1 a tfo:Device ; tfo:hasCapabilityProfile :pb ; schema:identifier "b-1" ; tfo:board "Board B" ; tfo:ramBytes 65536 ; tfo:flashBytes 524288 ;
   tfo:maxArenaBytes 4096 ; tfo:hasMicrocontroller [ schema:name "MCU-B" ] ; tfo:hasFirmware :F2 ;
   tfo:hasSensor [ sosa:observes tfo:camera ; tfo:sampleShape "1x96x96x1" ] .
dev:c-1 a tfo:Device ; tfo:hasCapabilityProfile :pc ; schema:identifier "c-1" ; tfo:board "Board C" ; tfo:ramBytes 131072 ; tfo:flashBytes 16384 ;
   tfo:hasMicrocontroller [ schema:name "MCU-C" ] ; tfo:hasFirmware :F1 .

# capability profiles, as extract_device derives them from the descriptions
:pa a tfo:CapabilityProfile ; tfo:profileRamBytes 262144 ; tfo:profileFlashBytes 1048576 ; tfo:profileFirmware :F1 ;
    tfo:profileModality tfo:microphone, tfo:camera ; tfo:profileSample "camera=1x8x8x1" .
:pb a tfo:CapabilityProfile ; tfo:profileRamBytes 65536 ; tfo:profileFlashBytes 524288 ; tfo:profileFirmware :F2 ;
    tfo:profileMaxArenaBytes 4096 ; tfo:profileModality tfo:camera ; tfo:profileSample "camera=1x96x96x1" .
:pc a tfo:CapabilityProfile ; tfo:profileRamBytes 131072 ; tfo:profileFlashBytes 16384 ; tfo:profileFirmware :F1 .

:cam a nnet:NeuralNetwork ; schema:identifier "cam@1" ; schema:name "cam" ; schema:version "1" ;
   tfo:modelKind "int8-backbone+float-head" ; tfo:flashBytes 20000 ; tfo:arenaBytes 8000 ;
   nnet:hasMultiplyAccumulateOps 5000 ;
   tfo:hasTrainableHead [ tfo:trainRamBytes 2000 ] ; tfo:modality tfo:camera ;
   ssn:hasInput [ tfo:tensorShape "1x8x8x1" ] ; tfo:usesOperator :CONV, :FC .
:kws a nnet:NeuralNetwork ; schema:identifier "kws@1" ; schema:name "kws" ; schema:version "1" ;
   tfo:modelKind "int8-backbone+float-head" ; tfo:flashBytes 50000 ; tfo:arenaBytes 30000 ;
   tfo:hasTrainableHead [ tfo:trainRamBytes 3000 ] ; tfo:modality tfo:microphone ;
   ssn:hasInput [ tfo:tensorShape "1x49x40x1" ] ; tfo:usesOperator :DW, :AVG, :CONV .
:sine a nnet:NeuralNetwork ; schema:identifier "sine@1" ; schema:name "sine" ; schema:version "1" ;
   tfo:modelKind "float-head" ; tfo:flashBytes 0 ; tfo:arenaBytes 0 ; nnet:hasMultiplyAccumulateOps 0 ;
   tfo:hasTrainableHead [ tfo:trainRamBytes 14096 ] ; tfo:modality tfo:none ;
   ssn:hasInput [ tfo:tensorShape "1x1" ] .

:d1 a tfo:Deployment ; tfo:deployedOn dev:a-1 ; tfo:deployedModel :sine ; prov:endedAtTime "2026-01-01T00:00:00+00:00"^^xsd:dateTime .
:d2 a tfo:Deployment ; tfo:deployedOn dev:a-1 ; tfo:deployedModel :cam ; prov:endedAtTime "2026-01-02T00:00:00+00:00"^^xsd:dateTime .
:d3 a tfo:Deployment ; tfo:deployedOn dev:b-1 ; tfo:deployedModel :sine ; prov:endedAtTime "2026-01-01T00:00:00+00:00"^^xsd:dateTime .

:t a tfo:FederatedTask ; schema:identifier "t" .
:v0 schema:version "0" . :v1 schema:version "1" ; prov:wasGeneratedBy :r0 .
:r0 a tfo:TrainingRound ; tfo:partOfTask :t ; tfo:roundNumber 0 ; tfo:strategy "reptile" ;
    prov:wasAssociatedWith dev:a-1, dev:b-1 ; prov:used :v0 ; tfo:bytesUp 10 ; tfo:bytesDown 20 ;
    prov:endedAtTime "2026-01-03T00:00:00+00:00"^^xsd:dateTime ;
    tfo:hasMetric [ schema:name "loss" ; schema:value "0.5"^^xsd:double ] .
:r1 a tfo:TrainingRound ; tfo:partOfTask :t ; tfo:roundNumber 1 ; tfo:strategy "reptile" ;
    prov:wasAssociatedWith dev:c-1 ; prov:endedAtTime "2026-01-04T00:00:00+00:00"^^xsd:dateTime ;
    tfo:hasMetric [ schema:name "accuracy" ; schema:value "0.9"^^xsd:double ] .
"""

CAM_B = (
    "tensor arena 8000 B > device maximum 4096 B; unsupported operators: CONV_2D; "
    "camera samples are 1x96x96x1, model input is 1x8x8x1"
)
KWS_B = (
    "tensor arena 30000 B > device maximum 4096 B; unsupported operators: "
    "AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D; no microphone sensor"
)

# (query name, parameters, expected rows as lexical forms; "" = unbound)
CASES = [
    (
        "model-devices",
        {"model": "cam@1"},
        [
            ("a-1", "true", ""),
            ("b-1", "false", CAM_B),
            ("c-1", "false", "flash 16384 B < model 20000 B; no camera sensor"),
        ],
    ),
    (
        "model-devices",
        {"model": "kws@1"},
        [
            ("a-1", "false", "unsupported operators: AVERAGE_POOL_2D, DEPTHWISE_CONV_2D"),
            ("b-1", "false", KWS_B),
            (
                "c-1",
                "false",
                "flash 16384 B < model 50000 B; unsupported operators: AVERAGE_POOL_2D, "
                "DEPTHWISE_CONV_2D; no microphone sensor",
            ),
        ],
    ),
    (
        "device-models",
        {"device": "b-1"},
        [("cam@1", "false", CAM_B), ("kws@1", "false", KWS_B), ("sine@1", "true", "")],
    ),
    ("eligible-profiles", {"model": "cam@1"}, [("urn:t:pa",)]),
    ("eligible-profiles", {"model": "sine@1"}, [("urn:t:pa",), ("urn:t:pb",), ("urn:t:pc",)]),
    (
        "devices-with-sensor-for-model",
        {"model": "sine@1", "sensor": "camera", "min_ram_kb": "100"},
        [("a-1", "262144")],
    ),
    (
        "devices-with-sensor-for-model",
        {"model": "sine@1", "sensor": "camera"},
        [("a-1", "262144"), ("b-1", "65536")],
    ),
    (
        "model-version-per-device",
        {},
        [
            ("a-1", "cam", "1", "2026-01-02T00:00:00+00:00"),
            ("b-1", "sine", "1", "2026-01-01T00:00:00+00:00"),
        ],
    ),
    (
        "round-participants",
        {"round": "0", "task": "t"},
        [("a-1", "reptile", "0", "1", "10", "20"), ("b-1", "reptile", "0", "1", "10", "20")],
    ),
    (
        "round-history",
        {"task": "t"},
        [
            ("0", "a-1", "0.5", "10", "20", "2026-01-03T00:00:00+00:00"),
            ("0", "b-1", "0.5", "10", "20", "2026-01-03T00:00:00+00:00"),
            ("1", "c-1", "", "", "", "2026-01-04T00:00:00+00:00"),
        ],
    ),
    (
        "device-inventory",
        {"min_ram_kb": "100"},
        [
            ("a-1", "Board A", "MCU-A", "262144", "1048576", "fw 1", "camera,microphone"),
            ("c-1", "Board C", "MCU-C", "131072", "16384", "fw 1", ""),
        ],
    ),
    (
        "model-inventory",
        {},
        [
            ("cam@1", "int8-backbone+float-head", "camera", "20000", "8000", "2000", "5000", "2"),
            ("kws@1", "int8-backbone+float-head", "microphone", "50000", "30000", "3000", "", "3"),
            ("sine@1", "float-head", "none", "0", "0", "14096", "0", "0"),
        ],
    ),
]


@pytest.fixture(scope="module", params=["oxigraph", "rdflib"])
def kg(request: pytest.FixtureRequest) -> KnowledgeGraph:
    graph = KnowledgeGraph.memory(request.param)
    graph.add(Graph().parse(data=TURTLE, format="turtle"), validate=False)  # partial on purpose
    return graph


def test_eligible_reads_the_profiles_devices(kg: KnowledgeGraph) -> None:
    assert kg.eligible("sine@1").devices == ("a-1", "b-1", "c-1")
    assert kg.eligible("cam@1").devices == ("a-1",)
    page = kg.eligible("sine", limit=2, offset=1)
    assert (page.model, page.total, page.devices, page.offset) == ("sine@1", 3, ("b-1", "c-1"), 1)
    assert kg.eligible("sine@1", limit=0).total == 3


def test_every_named_query_has_a_case() -> None:
    assert {name for name, _, _ in CASES} == set(named_queries())


@pytest.mark.parametrize(("name", "params", "expected"), CASES, ids=[c[0] for c in CASES])
def test_named_query_rows(kg: KnowledgeGraph, name: str, params: dict, expected: list) -> None:
    _names, rows = kg.select(get_named_query(name).bind(params))
    assert [tuple(plain(t) for t in row) for row in rows] == expected


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"model": 'cam@1" } ; DROP ALL ; #'}, "must be an identifier"),
        ({"model": "cam@1> <urn:x"}, "must be an identifier"),
        (
            {"model": "sine@1", "min_ram_kb": "1) } DELETE WHERE { ?s ?p ?o } #"},
            "must be an integer",
        ),
        ({"model": "sine@1", "nope": "1"}, "has no parameter nope"),
        ({}, "needs --param model="),
    ],
)
def test_bad_parameters_are_refused(kg: KnowledgeGraph, params: dict, fragment: str) -> None:
    before = len(kg)
    with pytest.raises(ParameterError, match=fragment):
        kg.select(get_named_query("devices-with-sensor-for-model").bind(params))
    assert len(kg) == before


def test_string_parameters_are_escaped_not_pasted() -> None:
    from tinyfleet.ontology.named_queries import Parameter

    term = Parameter("s", "string", None, "").to_term('x" } ; DROP ALL ; #')
    assert term.n3() == '"x\\" } ; DROP ALL ; #"'


def test_iri_parameter_rejects_breakout() -> None:
    from tinyfleet.ontology.named_queries import Parameter

    param = Parameter("d", "iri", None, "")
    assert str(param.to_term("urn:tinyfleet:x")) == "urn:tinyfleet:x"
    with pytest.raises(ParameterError, match="absolute IRI"):
        param.to_term("urn:x> } DROP ALL { <urn:y")


def test_unknown_named_query() -> None:
    with pytest.raises(ParameterError, match="no named query 'nope'; known: "):
        get_named_query("nope")


def test_sparql_syntax_error_is_clear(kg: KnowledgeGraph) -> None:
    before = len(kg)
    with pytest.raises(QuerySyntaxError, match="SPARQL syntax error"):
        kg.select("SELECT ?x WHERE { ?x ?p }")
    assert len(kg) == before
