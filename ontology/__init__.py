"""tinyfleet.ontology."""
