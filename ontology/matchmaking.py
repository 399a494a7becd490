"""Can device D run and train model M? Both ways, with reasons, and the eligible devices.

A device can run and train a model iff

* RAM >= tensor arena + head training RAM (parameters + gradients + one sample),
* the arena fits the device's ``max_arena_bytes`` when it declares one,
* flash >= the model's flash bytes,
* its firmware build supports every TFLite operator the model uses,
* unless the model's modality is ``none``: it has a sensor of that modality, and that
  sensor's declared sample shape (if any) equals the model's input shape.

The rule lives in SPARQL only (``queries/*.rq``): ``model-devices`` and ``device-models``
give every pair with its reasons, ``eligible-profiles`` the capability profiles that pass.
Every tinyfleet write stores that rule's result as ``tfo:eligibleProfile`` links
(:mod:`derived`), so :func:`eligible` reads the model's profiles and their device counts
by index, then the devices of the profiles a page spans with one more lookup (a ``VALUES``
join): its cost grows with the eligible profiles and the page, not with the fleet. The tests check all three against a brute-force Python
reference (``tests/ontology/reference.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tinyfleet.ontology.errors import KnowledgeGraphError
from tinyfleet.ontology.named_queries import Parameter, get_named_query
from tinyfleet.ontology.namespaces import ID, TFO
from tinyfleet.ontology.store import KnowledgeGraph

_DEVICE_PREFIX = f"{ID}device/"


@dataclass(frozen=True)
class Match:
    """One (device, model) pair: eligible or not, and why not ("" when eligible)."""

    device: str
    model: str
    eligible: bool
    reasons: str


@dataclass(frozen=True)
class Eligible:
    """The devices that can run and train a model: the total and one page of ids.

    Attributes
    ----------
    model
        The resolved model id (``name@version``).
    total
        How many devices are eligible.
    devices
        All device ids, sorted; or the page ``offset .. offset + limit`` of the devices
        ordered by capability profile (IRI), then id (see :func:`eligible`).
    offset
        Index of ``devices[0]`` in the full sorted list.
    """

    model: str
    total: int
    devices: tuple[str, ...]
    offset: int = 0


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


def eligible(kg: KnowledgeGraph, model: str, limit: int | None = None, offset: int = 0) -> Eligible:
    """The devices that can run and train ``model`` (``name@version``, or ``name`` for its
    highest version): all of them sorted (``limit=None``), or one page and the total.

    A page lists devices grouped by capability profile (profiles in IRI order), each
    profile's devices sorted by id: the total and the page's position come from the
    profiles' device counts, so only the devices of the profiles the page spans are read.
    Pages are stable while the fleet is unchanged and together list every device once.
    """
    if (limit is not None and limit < 0) or offset < 0:
        raise KnowledgeGraphError("limit and offset must not be negative")
    # name@version goes straight to the rule; its existence is checked only if nothing passes
    model_id = model if "@" in model else resolve_model_id(kg, model)
    counts = _eligible_profiles(kg, model_id)
    if not counts:
        return Eligible(resolve_model_id(kg, model_id), 0, (), offset)
    if limit is None:
        devices = sorted(d for found in _devices_of(kg, list(counts)).values() for d in found)
        return Eligible(model_id, len(devices), tuple(devices[offset:]), offset)
    skipped, spanned, span = 0, 0, list[str]()
    for profile in sorted(counts):  # the profiles the page spans, and what precedes
        if not span and skipped + counts[profile] <= offset:
            skipped += counts[profile]
        elif skipped + spanned < offset + limit:
            span.append(profile)
            spanned += counts[profile]
    found = _devices_of(kg, span) if limit else {}
    ordered = [d for profile in span for d in sorted(found.get(profile, ()))]
    page = ordered[offset - skipped : offset - skipped + limit]
    return Eligible(model_id, sum(counts.values()), tuple(page), offset)


def _eligible_profiles(kg: KnowledgeGraph, model_id: str) -> dict[str, int]:
    """The profiles whose devices can run and train the model, and their device counts:
    the stored links (``tfo:eligibleProfile``, see :mod:`derived`) where the model's are
    complete, else the rule itself (``eligible-profiles``)."""
    term = Parameter("model", "id", None, "").to_term(model_id).n3()
    rows = kg.select_values(  # one index lookup per link, not the rule per profile
        f"SELECT ?done ?profile ?n WHERE {{ ?model schema:identifier {term} ;"
        f" <{TFO.eligibleProfilesDerived}> ?done ."
        f" OPTIONAL {{ ?model <{TFO.eligibleProfile}> ?profile"
        f" OPTIONAL {{ ?profile <{TFO.profileDeviceCount}> ?n }} }} }}"
    )
    if not rows or rows[0][0] not in ("true", "1"):
        rule = get_named_query("eligible-profiles").bind({"model": model_id})
        if "ORDER BY" in rule:  # sorted here: cheaper than in the engine
            rule = rule.rpartition("ORDER BY")[0]
        rows = kg.select_values(
            f"SELECT ?profile ?n WHERE {{ {{ {rule} }}"
            f" OPTIONAL {{ ?profile <{TFO.profileDeviceCount}> ?n }} }}"
        )
    else:
        rows = [row[1:] for row in rows if row[1]]
    counts = {profile: int(n) for profile, n in rows if n}
    missing = [profile for profile, n in rows if not n]
    if missing:  # counts not derived yet (a raw bulk load): count those profiles here
        counts.update({p: len(found) for p, found in _devices_of(kg, missing).items()})
        counts.update({p: 0 for p in missing if p not in counts})
    return counts


def _devices_of(kg: KnowledgeGraph, profiles: list[str]) -> dict[str, list[str]]:
    """Device ids per profile IRI: one index lookup (a ``VALUES`` join, which Oxigraph runs
    per profile instead of hash-joining the link over the whole fleet)."""
    if not profiles:
        return {}
    values = " ".join(f"<{p}>" for p in profiles)
    rows = kg.select_values(
        f"SELECT ?p ?d WHERE {{ VALUES ?p {{ {values} }} ?d <{TFO.hasCapabilityProfile}> ?p }}"
    )
    found: dict[str, list[str]] = {}
    for profile, device in rows:
        found.setdefault(profile, []).append(_device_id(device))
    return found


def _device_id(iri: Any) -> str:
    """A device IRI's id (the device shape keeps ids to characters IRIs keep as is)."""
    return unquote(str(iri)[len(_DEVICE_PREFIX) :])


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
