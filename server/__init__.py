"""tinyfleet.server: the federated server.

Role: Flower strategies (TinyReptile, Reptile, FedAvg) over the Message API
(``strategies``, ``sampling``, ``validation``), Flower record keys (``records``), the run's
starting head (``initial``), few-shot evaluation on held-out devices (``fewshot``), the
in-process Grid and run helpers (``grid``, ``run``), the MQTT gateway and its Flower
ClientApp for a SuperNode (``gateway``, ``gateway_flower``), the managed Mosquitto
(``broker``), and the knowledge-graph hooks of a run (``fleet_kg``).

May import: ``tinyfleet.device`` (the wire contract and round function), ``tinyfleet.ontology``,
Flower, paho-mqtt. Never ``tinyfleet.simulations`` or TensorFlow.
"""
