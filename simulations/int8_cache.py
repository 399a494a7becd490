"""A simulator's shortcut for backbones with few distinct int8 inputs (sensor readings).

A device quantises its input to int8 before the backbone runs, so the embedding depends
only on those int8 bytes. :class:`QuantizedInputCache` quantises exactly as
:meth:`~tinyfleet.device.backbone.Int8Backbone.embed_int8` does, runs TFLM once per
distinct int8 input and remembers the int8 output: bit-identical to calling the
backbone per sample, at a fraction of the interpreter calls.
"""

from __future__ import annotations

import numpy as np

from tinyfleet.device.backbone import Int8Backbone, quantize
from tinyfleet.device.embedding_cache import BackboneView


class QuantizedInputCache(BackboneView):
    """A drop-in :class:`Int8Backbone` (embed, costs) with a memo of int8 outputs."""

    def __init__(self, backbone: Int8Backbone, max_entries: int = 2_000_000) -> None:
        self.backbone = backbone
        self._memo: dict[bytes, np.ndarray] = {}
        self._max = int(max_entries)

    def embed_int8(self, x: np.ndarray) -> np.ndarray:
        """Int8 embeddings of a batch ``(n, *input_shape)`` or of one sample."""
        arr = np.asarray(x)
        single = arr.shape == self.input_shape
        batch = arr[None] if single else arr
        q_in = quantize(batch, self.backbone.input_quant)
        out = np.empty((len(q_in), self.embedding_dim), dtype=np.int8)
        for i, row in enumerate(q_in):
            key = row.tobytes()
            hit = self._memo.get(key)
            if hit is None:
                if len(self._memo) >= self._max:
                    self._memo.clear()
                hit = self.backbone.invoke_int8(row)
                self._memo[key] = hit
            out[i] = hit
        return out[0] if single else out

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Float32 embeddings, ``dequantize(embed_int8(x))``."""
        return self.backbone.dequantize_output(self.embed_int8(x))
