"""A simulator's shortcut: backbone embeddings of a fixed image set, computed once.

A simulated fleet pushes the same few thousand images through the frozen backbone
millions of times. :class:`CachedEmbedder` runs TFLM once per distinct image (at
construction) and afterwards answers :meth:`embed` by looking the sample's bytes up;
inputs it has not seen go through the real interpreter. Because every cached entry IS
the interpreter's output for exactly those bytes, results are bit-identical to calling
:meth:`Int8Backbone.embed` per sample. Costs (MACs, arena) are still those of the
backbone: it is a drop-in :class:`~tinyfleet.device.backbone.Int8Backbone` for the
learner and the runner.
"""

from __future__ import annotations

import numpy as np

from tinyfleet.device.backbone import Int8Backbone, dequantize
from tinyfleet.errors import UsageError


class BackboneView:
    """What the learner and the runner read from a backbone (shape and costs), for
    stand-ins that wrap an :class:`Int8Backbone` in ``self.backbone``."""

    backbone: Int8Backbone

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.backbone.input_shape

    @property
    def embedding_dim(self) -> int:
        return self.backbone.embedding_dim

    @property
    def arena_bytes(self) -> int:
        return self.backbone.arena_bytes

    @property
    def flash_bytes(self) -> int:
        return self.backbone.flash_bytes

    @property
    def macs(self) -> int:
        return self.backbone.macs


class CachedEmbedder(BackboneView):
    """Wraps an :class:`Int8Backbone` with a lookup table over ``images``.

    Parameters
    ----------
    backbone
        The real backbone (still used for unseen inputs).
    images
        ``(n, *backbone.input_shape)`` float inputs to precompute.

    Attributes
    ----------
    images, table_int8
        The cached inputs (float32) and their int8 embeddings, row for row; simulators
        may index ``table_int8`` / :meth:`embeddings` directly by image id.
    """

    def __init__(self, backbone: Int8Backbone, images: np.ndarray) -> None:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.shape[1:] != backbone.input_shape:
            raise UsageError(
                f"cached images have shape {images.shape[1:]}, backbone expects "
                f"{backbone.input_shape}"
            )
        self.backbone = backbone
        self.images = images
        self.table_int8 = backbone.embed_int8(images) if len(images) else np.zeros((0, 0))
        self._index = {images[i].tobytes(): i for i in range(len(images))}
        self.hits = 0
        self.misses = 0

    def embeddings(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Float32 embeddings of cached images by row id (all rows when ``ids`` is None)."""
        table = self.table_int8 if ids is None else self.table_int8[np.asarray(ids)]
        return dequantize(table, self.backbone.output_quant)

    def embed_int8(self, x: np.ndarray) -> np.ndarray:
        """Same contract as :meth:`Int8Backbone.embed_int8` (one sample or a batch)."""
        arr = np.asarray(x, dtype=np.float32)
        single = arr.shape == self.input_shape
        batch = arr[None] if single else arr
        if batch.shape[1:] != self.input_shape:
            raise UsageError(
                f"backbone expects a sample of shape {self.input_shape} or a batch, got {arr.shape}"
            )
        out = np.empty((len(batch), self.embedding_dim), dtype=np.int8)
        for row, sample in enumerate(np.ascontiguousarray(batch)):
            hit = self._index.get(sample.tobytes())
            if hit is None:
                self.misses += 1
                out[row] = self.backbone.embed_int8(sample)
            else:
                self.hits += 1
                out[row] = self.table_int8[hit]
        return out[0] if single else out

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Float32 embedding(s), bit-identical to :meth:`Int8Backbone.embed`."""
        return dequantize(self.embed_int8(x), self.backbone.output_quant)
