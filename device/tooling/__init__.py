"""Host-side model tooling: what a host does with a model before a device gets it.

A dependency-free ``.tflite`` reader (:mod:`~.tflite_model`), model cards with per-layer
costs (:mod:`~.modelcard`), and the TFLM arena measurement (:mod:`~.arena`). No
microcontroller runs this code; the device runtime uses the reader to learn a backbone's
quantisation. Imports numpy and tflite-micro only (no TensorFlow, no Flower).
"""
