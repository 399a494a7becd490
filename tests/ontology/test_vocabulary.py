"""The ontology: standard terms where they exist, no unused terms, examples valid for
plain pyshacl (no tinyfleet code in the loop)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from rdflib import RDF, Graph, URIRef
from rdflib.namespace import OWL, SKOS

from tinyfleet.ontology.loaders import load_description
from tinyfleet.ontology.namespaces import NNET, PROV, TFO, model_iri, operator_iri
from tinyfleet.ontology.resources import EXAMPLES_DIR
from tinyfleet.ontology.store import KnowledgeGraph

ONTOLOGY = Path(__file__).parents[2] / "ontology"
CORE = ONTOLOGY / "core" / "tinyfleet.ttl"
SHAPES = ONTOLOGY / "shapes" / "tinyfleet-shapes.ttl"


def _examples_graph() -> KnowledgeGraph:
    kg = KnowledgeGraph.memory()
    for path in sorted(EXAMPLES_DIR.iterdir()):
        description = load_description(path)
        kg.add(description.graph, replace=description.replace)
    return kg


def test_every_declared_term_is_used() -> None:
    core = Graph().parse(CORE)
    used = "\n".join(
        p.read_text()
        for p in [*ONTOLOGY.glob("*.py"), *ONTOLOGY.glob("queries/*.rq"), SHAPES]
        + [*EXAMPLES_DIR.iterdir()]
    )
    unused = []
    kinds = (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty)  # not the enumerations
    for term in {t for kind in kinds for t in core.subjects(RDF.type, kind)}:
        name = str(term).removeprefix(str(TFO))
        if str(term).startswith(str(TFO)) and not re.search(rf"(TFO\.|tfo:){name}\b", used):
            unused.append(name)
    assert sorted(unused) == []


def test_standard_terms_for_tensors_layers_versions_metrics_and_sensors() -> None:
    graph = _examples_graph().graph
    digits = model_iri("digits-backbone", "1")
    inp, out = URIRef(f"{digits}/input"), URIRef(f"{digits}/output")
    assert (inp, RDF.type, NNET.NetworkInput) in graph
    assert (inp, RDF.type, NNET.NetworkOutput) not in graph
    assert (out, RDF.type, NNET.NetworkOutput) in graph
    assert any(graph.triples((None, NNET.shapeOut, None)))
    assert (operator_iri("CONV_2D"), SKOS.exactMatch, NNET.Conv2D) in graph
    versions = list(graph.subject_objects(PROV.specializationOf))
    assert versions and all(o == digits for _s, o in versions)
    sosa_observes = URIRef("http://www.w3.org/ns/sosa/observes")
    assert any(graph.triples((None, sosa_observes, TFO.camera)))
    metric = URIRef("https://schema.org/PropertyValue")
    assert any(graph.triples((None, RDF.type, metric)))


def test_examples_validate_with_plain_pyshacl(tmp_path: Path) -> None:
    export = tmp_path / "examples.ttl"
    export.write_text(_examples_graph().export("turtle"))
    pyshacl = Path(sys.executable).with_name("pyshacl")
    for data in (export, EXAMPLES_DIR / "history.ttl"):
        command = [str(pyshacl), "-s", str(SHAPES), "-i", "none", str(data)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "Conforms: True" in result.stdout, result.stdout[-2000:]


def test_shapes_list_exactly_the_ontologys_modalities() -> None:
    from rdflib.collection import Collection

    core, shapes = Graph().parse(CORE), Graph().parse(SHAPES)
    declared = set(core.subjects(RDF.type, TFO.SensorModality))
    sh_in = URIRef("http://www.w3.org/ns/shacl#in")
    lists = [set(Collection(shapes, node)) for node in shapes.objects(None, sh_in)]
    modality_lists = [items for items in lists if TFO.camera in items]
    assert len(modality_lists) == 3 and all(items == declared for items in modality_lists)
