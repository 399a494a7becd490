"""A real SPARQL client (SPARQLWrapper) against `tinyfleet kg serve` on a loopback port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from SPARQLWrapper import CSV, JSON, POST, SPARQLWrapper
from SPARQLWrapper.SPARQLExceptions import SPARQLWrapperException

from tinyfleet.ontology.resources import EXAMPLES_DIR

TOKEN = "s3cret-token"
DEVICES_QUERY = """
PREFIX tfo: <https://w3id.org/tinyfleet/ontology#>
PREFIX schema: <https://schema.org/>
SELECT ?id ?ram WHERE { ?d a tfo:Device ; schema:identifier ?id ; tfo:ramBytes ?ram .
  FILTER(?ram >= 300000) } ORDER BY ?id
"""


def _serve(tmp_path: Path, *extra: str) -> Iterator[str]:
    files = [str(p) for p in sorted(EXAMPLES_DIR.glob("device-*.json"))]
    command = [sys.executable, "-m", "tinyfleet.cli", "kg", "serve", "--port", "0"]
    command += ["--store", str(tmp_path / "kg"), "--load", *files, *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "SPARQL endpoint http://127.0.0.1:PORT/sparql (...)"
        assert line.startswith("SPARQL endpoint http://127.0.0.1:"), line
        yield line.split()[2]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("rw"), "--write-token", TOKEN)


@pytest.fixture(scope="module")
def readonly_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("ro"))


def _ids(url: str, method: str = "GET") -> list[tuple[str, int]]:
    client = SPARQLWrapper(url)
    client.setQuery(DEVICES_QUERY)
    client.setReturnFormat(JSON)
    if method == "POST":
        client.setMethod(POST)
    result = client.query().convert()
    assert isinstance(result, dict)
    return [(b["id"]["value"], int(b["ram"]["value"])) for b in result["results"]["bindings"]]


EXPECTED = [
    ("esp32s3-eye-0001", 524288),
    ("f746disco-0001", 327680),
    ("sparkfun-edge-0001", 393216),
]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_sparqlwrapper_gets_the_expected_rows(endpoint: str, method: str) -> None:
    assert _ids(endpoint, method) == EXPECTED


def test_csv_by_content_negotiation(endpoint: str) -> None:
    client = SPARQLWrapper(endpoint)
    client.setQuery(DEVICES_QUERY)
    client.setReturnFormat(CSV)
    raw = client.query().convert()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    assert text.splitlines() == ["id,ram"] + [f"{i},{r}" for i, r in EXPECTED]


UPDATE = """
PREFIX tfo: <https://w3id.org/tinyfleet/ontology#>
PREFIX schema: <https://schema.org/>
DELETE { ?d tfo:ramBytes ?r } INSERT { ?d tfo:ramBytes 1048576 }
WHERE { ?d schema:identifier "pico-0001" ; tfo:ramBytes ?r }
"""


def _update(url: str, text: str, token: str | None) -> None:
    client = SPARQLWrapper(url)
    client.setMethod(POST)
    client.setQuery(text)
    if token is not None:
        client.addCustomHttpHeader("Authorization", f"Bearer {token}")
    client.query()


def test_update_refused_without_token_then_accepted_with_it(endpoint: str) -> None:
    with pytest.raises((SPARQLWrapperException, HTTPError)) as refused:
        _update(endpoint, UPDATE, None)
    assert "401" in str(refused.value) or "Unauthorized" in str(refused.value)
    with pytest.raises((SPARQLWrapperException, HTTPError)):
        _update(endpoint, UPDATE, "wrong")
    assert _ids(endpoint) == EXPECTED  # unchanged
    _update(endpoint, UPDATE, TOKEN)
    assert ("pico-0001", 1048576) in _ids(endpoint)


def test_invalid_update_refused_with_shape_message(endpoint: str) -> None:
    bad = UPDATE.replace("INSERT { ?d tfo:ramBytes 1048576 }", "")
    request = Request(
        endpoint,
        data=bad.encode(),
        headers={"Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"},
    )
    with pytest.raises(HTTPError) as error:
        urlopen(request, timeout=10)
    assert error.value.code == 400
    assert "A device needs exactly one tfo:ramBytes" in error.value.read().decode()


def test_readonly_endpoint_refuses_any_update(readonly_endpoint: str) -> None:
    request = Request(
        readonly_endpoint,
        data=UPDATE.encode(),
        headers={"Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"},
    )
    with pytest.raises(HTTPError) as error:
        urlopen(request, timeout=10)
    assert error.value.code == 403
    assert _ids(readonly_endpoint) == EXPECTED


def test_syntax_error_is_400(endpoint: str) -> None:
    request = Request(
        endpoint, data=b"SELECT ?x WHERE {", headers={"Content-Type": "application/sparql-query"}
    )
    with pytest.raises(HTTPError) as error:
        urlopen(request, timeout=10)
    assert error.value.code == 400
    assert "SPARQL syntax error" in error.value.read().decode()
