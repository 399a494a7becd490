"""tinyfleet.device: what runs on a device (or stands in for one on a host).

Role: the device runtime. The int8 backbone on the TFLM interpreter (``backbone``,
``embedding_cache``), the float head and its per-sample SGD (``head``, ``learner``), the
device's share of a federated round (``rounds``), the keyword-audio front end
(``frontend``: CMSIS-DSP q15 MFCC, as the firmware computes it), the MQTT device client (``mqtt``, the
one paho client factory, and ``mqtt_client``), and the wire contract both sides speak
(``wire``: codec, chunks, topics, round plan, config and metric keys). Host-side model
tooling that no microcontroller runs lives apart in ``tooling`` (.tflite reader, model
cards, arena measurement).

May import: numpy, tflite-micro, paho-mqtt, cmsisdsp, ``tinyfleet.errors``. Never Flower,
TensorFlow, or tinyfleet's server, simulations, ontology or firmware (a real device has
none of them); ``scripts/lint_imports.sh`` checks this in CI.
"""
