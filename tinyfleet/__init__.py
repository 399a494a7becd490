"""tinyfleet: federated meta-learning and semantic management for microcontroller fleets.

The root package holds only the version, the error base class and the CLI that wires the
subpackages' commands together (``tinyfleet.server``, ``tinyfleet.device``,
``tinyfleet.firmware``, ``tinyfleet.ontology``, ``tinyfleet.simulations``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
