"""tinyfleet.ontology: the fleet's RDF knowledge graph (see docs/ontology.md).

May import ``tinyfleet.device`` (the model reader); never ``tinyfleet.server``,
``tinyfleet.simulations`` or TensorFlow.

Kept import-light (the CLI imports this package); the API lives in submodules:

* ``store.KnowledgeGraph`` -- ``memory()``, ``open(dir)``, ``remote(url)``; ``add(graph,
  replace=...)``, ``update(sparql)``, ``query``/``select``, ``export``,
  ``eligible(model, limit=None, offset=0) -> matchmaking.Eligible``.
* ``matchmaking.match_model``, ``match_device`` (pairs with reasons); the rule itself is
  SPARQL only (``queries/``), checked against a Python reference kept in the tests.
* ``provenance.round_to_rdf(round_record) -> Graph``, ``deployment_to_rdf(...)``.
* ``extract_device.device_to_rdf``, ``extract_model.card_to_rdf`` / ``load_card``,
  ``extract_wot.td_to_rdf``, ``loaders.load_description(path)``.
* ``named_queries.get_named_query(name).bind(params)``; ``endpoint.make_server(kg, ...)``.
"""
