"""Derived data that every tinyfleet write keeps in step with the facts, in the same request.

* ``tfo:profileDeviceCount``: how many devices a capability profile has, so matchmaking
  totals the eligible devices per profile instead of counting up to a whole fleet.
* ``tfo:eligibleProfile``: model -> the capability profiles whose devices can run and train
  it: the matchmaking rule (``queries/eligible-profiles.rq``) evaluated once and stored, so a
  page of eligible devices is an index lookup instead of the rule over every profile (the
  rule costs ~10-20 us of server CPU per profile: tens of ms for a whole-fleet model).
  ``tfo:eligibleProfilesDerived true`` marks a model whose links are complete; a model
  without it (after a bulk load around tinyfleet) is answered by the rule itself.

The rule reads three kinds of facts, and a write re-derives the links each kind touches:

* a model's facts (anything said of the model or of the nodes it owns, ``<model>/...`` or
  blank): its marker is dropped and its links are derived again over every profile;
* a capability profile's or firmware build's facts (:data:`RULE_PREDICATES`), added (only
  those not stored before count: the check runs inside the write's transaction, before the
  insert) or removed: the links to those profiles (to the firmware's profiles) are derived
  again for every marked model. New profiles are the common case: a device batch of a new
  product or build;
* facts of blank nodes no written subject owns: every model is derived again (rare: SPARQL
  UPDATEs that edit blank nodes directly).

Everything is text appended to the write's own ``DELETE DATA ; INSERT DATA`` request, so a
remote store applies facts and derived data in one transaction (Oxigraph: one request, one
transaction). Writers that bypass tinyfleet leave derived data stale; after such a write,
:meth:`KnowledgeGraph.recount_profiles` derives everything again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rdflib import RDF, BNode, URIRef

from tinyfleet.ontology.named_queries import get_named_query
from tinyfleet.ontology.namespaces import ID, NNET, TFO

Triple = tuple[Any, Any, Any]

LINK = f"<{TFO.eligibleProfile}>"
MARK = f"<{TFO.eligibleProfilesDerived}>"
RULE_PREDICATES = frozenset(
    {
        TFO.supportsOperator,
        TFO.profileFirmware,
        TFO.profileRamBytes,
        TFO.profileFlashBytes,
        TFO.profileMaxArenaBytes,
        TFO.profileModality,
        TFO.profileSample,
    }
)
_RULE_TYPES = frozenset({TFO.Firmware, TFO.CapabilityProfile})
# one-element sets: membership hashes, where == on rdflib terms runs Python code
_TYPE, _FIRMWARE = frozenset({RDF.type}), frozenset({TFO.Firmware})
_OPERATORS, _PROFILE_FIRMWARE = frozenset({TFO.supportsOperator}), frozenset({TFO.profileFirmware})
_MODELS = f"{ID}model/"
_DIGESTS = (f"{ID}profile/", f"{ID}firmware/")


def touched_profiles(removed: Iterable[Triple], added: Iterable[Triple]) -> set[URIRef]:
    """Capability profiles whose device count a change may alter: those a device joins or
    leaves, and those whose count triple the change itself edits."""
    link, count = TFO.hasCapabilityProfile, TFO.profileDeviceCount
    wanted = {link, count}  # a set lookup hashes; == on every predicate was 1/8 of a write
    found: set[URIRef] = set()
    for triples in (removed, added):
        for s, p, o in triples:
            if p not in wanted:
                continue
            if p == link and isinstance(o, URIRef):
                found.add(o)
            elif p == count and isinstance(s, URIRef):
                found.add(s)
    return found


def profile_recount_update(profiles: set[URIRef] | None) -> str:
    """SPARQL UPDATE that sets ``tfo:profileDeviceCount`` of ``profiles`` (``None``: all)
    to the number of devices linked to each; "" when there is nothing to recount."""
    if profiles is not None and not profiles:
        return ""
    values = (
        "" if profiles is None else f"VALUES ?p {{ {' '.join(p.n3() for p in sorted(profiles))} }}"
    )
    count, link = f"<{TFO.profileDeviceCount}>", f"<{TFO.hasCapabilityProfile}>"
    # counted from the link alone (grouping it is an index scan; OPTIONAL per profile is not)
    return (
        f"DELETE {{ ?p {count} ?old }} WHERE {{ {values} ?p {count} ?old }} ;\n"
        f"INSERT {{ ?p {count} ?n }} WHERE {{ {{ SELECT ?p (COUNT(?d) AS ?n)"
        f" WHERE {{ {values} ?d {link} ?p }} GROUP BY ?p }} }} ;\n"
        f"INSERT {{ ?p {count} 0 }} WHERE {{ {values} ?p a <{TFO.CapabilityProfile}>"
        f" FILTER NOT EXISTS {{ ?p {count} ?any }} }}"
    )


def _rule(models: str, profiles: str = "") -> str:
    """``INSERT`` of the rule's (model, profile) pairs, restricted at the rule's anchors."""
    text = get_named_query("eligible-profiles").body
    body = text[text.index("WHERE {") + len("WHERE {") : text.rindex("}")]
    assert body.count("#@models") == 2 and body.count("#@profiles") == 1, "rule anchors moved"
    body = body.replace(". #@models", f". {models}").replace("#@profiles", profiles)
    return f"INSERT {{ ?net {LINK} ?profile }} WHERE {{ {body} }}"


def derive_all_update() -> str:
    """Derive every model's links from scratch (after writes that bypassed tinyfleet)."""
    return " ;\n".join([f"DELETE WHERE {{ ?m {MARK} ?x }}", *_derive_models("")])


def _derive_models(values: str) -> list[str]:
    """Links of the unmarked models (among ``values``, a ``VALUES ?net`` clause, if given),
    derived again over every profile; then those models are marked."""
    unmarked = f"{values} OPTIONAL {{ ?net {MARK} ?done }} FILTER(!BOUND(?done))"
    models = f"{{ SELECT ?net WHERE {{ ?net a <{NNET.NeuralNetwork}> {unmarked} }} }}"
    return [
        f"DELETE {{ ?net {LINK} ?p }} WHERE {{ {models} ?net {LINK} ?p }}",
        _rule(unmarked),
        f"INSERT {{ ?net {MARK} true }} WHERE {{ {models} }}",
    ]


def eligibility_updates(
    removed: list[Triple], added: list[Triple], select_values: Callable[[str], list[list[str]]]
) -> list[str]:
    """The operations that bring the eligibility links in step with one write, run after
    its ``INSERT DATA`` in the same request ([] when the write changes no rule input).

    ``select_values`` (the store's :meth:`KnowledgeGraph.select_values`) asks, before the
    write, which profiles and firmware builds the write creates or edits: the common write
    re-states the stored profiles of its devices, and then nothing is derived.
    """
    gained, lost = _rule_facts(added), _rule_facts(removed)
    models, every_model = _touched_models(removed, added)
    # blank profiles or builds (hand-written data): which profiles they are is unknown
    every_model = every_model or any(isinstance(s, BNode) for s, _p, _o in [*gained, *lost])
    created, edited = _new_and_edited(gained, select_values)
    edited |= {s for s, _p, _o in lost if isinstance(s, URIRef)}
    stale = created | edited
    builds = {s for s, p, o in [*gained, *lost] if p in _OPERATORS or o in _FIRMWARE}
    if builds & stale:  # an edited build: every profile running it, stored or written now
        used = " ".join(b.n3() for b in sorted(builds & stale))
        rows = select_values(
            f"SELECT ?p WHERE {{ VALUES ?fw {{ {used} }} ?p <{TFO.profileFirmware}> ?fw }}"
        )
        running = {URIRef(row[0]) for row in rows} | {
            s for s, p, o in gained if p in _PROFILE_FIRMWARE and o in stale
        }
        edited |= running - created
        stale |= running
    profiles = stale - builds
    ops = []
    touched = f"VALUES ?net {{ {' '.join(m.n3() for m in sorted(models))} }}"
    if every_model:
        ops.append(f"DELETE WHERE {{ ?net {MARK} ?x }}")
    elif models:
        ops.append(f"DELETE {{ ?net {MARK} ?x }} WHERE {{ {touched} ?net {MARK} ?x }}")
    if edited - builds:
        nodes = " ".join(p.n3() for p in sorted(edited - builds))
        ops.append(f"DELETE {{ ?m {LINK} ?p }} WHERE {{ VALUES ?p {{ {nodes} }} ?m {LINK} ?p }}")
    if profiles:  # VALUES first: the rule then runs for these profiles only
        nodes = " ".join(p.n3() for p in sorted(profiles))
        ops.append(_rule(f"?net {MARK} true .", f"VALUES ?profile {{ {nodes} }}"))
    if every_model:
        ops += _derive_models("")
    elif models:
        ops += _derive_models(touched)
    return ops


def _new_and_edited(
    gained: list[Triple], select_values: Callable[[str], list[list[str]]]
) -> tuple[set[URIRef], set[URIRef]]:
    """Of the profiles and builds a write states facts of: those new to the derived data,
    and those stored that gain a fact.

    A node named by the digest of its facts (tinyfleet's profile and firmware IRIs) whose
    type the write states is probed by one fact: the write describes it whole, and its
    name says its facts are the stored ones. For a profile that fact is its device count,
    which the same request writes after deriving its links: a profile stored without one
    (a load around tinyfleet, or a chunked write cut short before its last request) is
    derived again, not skipped."""
    typed = {s for s, p, _o in gained if p in _TYPE}
    whole = {s for s in typed if isinstance(s, URIRef) and str(s).startswith(_DIGESTS)}
    probes = [
        (s, p, o)
        for s, p, o in gained
        if isinstance(s, URIRef) and (s not in whole or (p in _TYPE and o in _FIRMWARE))
    ]
    counted = sorted(s for s in whole if str(s).startswith(_DIGESTS[0]))
    if not probes and not counted:
        return set(), set()
    branches = []  # no empty VALUES: rdflib's engine fails on them
    if probes:
        rows = " ".join(f"({s.n3()} {p.n3()} {o.n3()})" for s, p, o in probes)
        branches.append(
            f"{{ VALUES (?s ?pr ?o) {{ {rows} }}"
            f" OPTIONAL {{ ?s ?pr ?o . BIND(true AS ?stored) }} FILTER(!BOUND(?stored)) }}"
        )
    if counted:
        branches.append(
            f"{{ VALUES ?s {{ {' '.join(s.n3() for s in counted)} }}"
            f" OPTIONAL {{ ?s <{TFO.profileDeviceCount}> ?n }} FILTER(!BOUND(?n))"
            f" BIND(<{RDF.type}> AS ?pr) }}"
        )
    found = select_values(f"SELECT DISTINCT ?s ?pr WHERE {{ {' UNION '.join(branches)} }}")
    missing = {(URIRef(s), URIRef(p)) for s, p in found}
    created = {s for s, p in missing if p in _TYPE}
    return created, {s for s, _p in missing} - created


def _rule_facts(triples: list[Triple]) -> list[Triple]:
    """The triples that state rule facts of profiles or firmware builds (one pass: batches
    are tens of thousands of triples, and rdflib terms compare slowly with ``==``)."""
    return [
        t for t in triples if t[1] in RULE_PREDICATES or (t[1] in _TYPE and t[2] in _RULE_TYPES)
    ]


def _touched_models(removed: list[Triple], added: list[Triple]) -> tuple[set[URIRef], bool]:
    """IRIs that may be models a change touches, and whether a blank node no written
    subject links to was edited (its owner is unknown: every model counts as touched).

    tinyfleet's models are ``<ID>model/<name>/<version>`` and own the IRIs below theirs
    (head, input); its other IRIs are never models. Any other IRI may be a model.
    """
    subjects = {t[0] for t in removed} | {t[0] for t in added}
    linked: set[Any] | None = None  # objects: only needed when a subject is blank
    candidates: set[URIRef] = set()
    blank = False
    for s in subjects:
        if isinstance(s, BNode):
            if linked is None:
                linked = {t[2] for t in removed if isinstance(t[2], BNode)}
                linked |= {t[2] for t in added if isinstance(t[2], BNode)}
            blank = blank or s not in linked
        elif isinstance(s, URIRef):
            text = str(s)
            if text.startswith(_MODELS):
                candidates.add(URIRef(_MODELS + "/".join(text[len(_MODELS) :].split("/")[:2])))
            elif not text.startswith(ID):
                candidates.add(s)
    return candidates, blank
