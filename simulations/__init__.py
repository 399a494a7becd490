"""tinyfleet.simulations: simulated fleets and the experiments run on them.

Role: use cases (data streams + Keras model recipes: ``usecase``, ``usecases``, ``models``;
keyword audio data -- Speech Commands loader, espeak-ng corpus, MFCC cache -- in ``audio``),
pre-training and int8 export (``export``; the only place TensorFlow is imported), seeding
rules of the simulation (``seeding``), simulated devices (``fleet``; the Flower ClientApp
of a simulated device, ``clientapp``; MQTT device processes, ``mqtt_fleet``), the
comparison runner and its reports (``runner``, ``report``), and the CLI commands that
need a use case's data (``simulate``, ``export``, ``device run``, ``bridge serial``).

May import everything else of tinyfleet; nothing imports it but the root CLI.
"""
