"""Static tensor-arena planning: tensor lifetimes and greedy first-fit offsets.

Each activation tensor lives from the operator that writes it (the graph input: from
the start) to the last operator that reads it (graph outputs: to the end). Tensors
whose lifetimes overlap get disjoint byte ranges; the rest share memory. Placing the
largest tensors first, each at the lowest aligned offset that clashes with nothing
already placed, is the same greedy strategy TFLM's memory planner uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tinyfleet.device.tooling.tflite_model import Subgraph

ALIGNMENT = 16


@dataclass(frozen=True)
class Buffer:
    """One activation tensor to place: id, byte size, first and last op (inclusive)."""

    tensor: int
    size: int
    first: int
    last: int

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets (bytes, aligned) of every tensor in one arena of ``size`` bytes."""

    offsets: dict[int, int]
    size: int


def _align(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_arena(buffers: Sequence[Buffer]) -> ArenaPlan:
    """Greedy first-fit by decreasing size; returns offsets and the arena size."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[int, int] = {}
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.tensor)):
        clashes = sorted(
            (off, off + other.size) for other, off in placed if other.overlaps_in_time(buf)
        )
        offset = 0
        for start, end in clashes:
            if offset + buf.size <= start:
                break
            offset = max(offset, _align(end))
        offsets[buf.tensor] = offset
        placed.append((buf, offset))
    size = max((off + b.size for b, off in placed), default=0)
    return ArenaPlan(offsets=offsets, size=_align(size))


def tensor_lifetimes(graph: Subgraph) -> list[Buffer]:
    """Lifetimes of the non-constant tensors in operator-index units."""
    n_ops = len(graph.operators)
    first: dict[int, int] = {i: -1 for i in graph.inputs}
    last: dict[int, int] = {}
    for op in graph.operators:
        for t in op.outputs:
            first.setdefault(t, op.index)
        for t in op.inputs:
            if t >= 0 and not graph.tensor(t).is_constant:
                last[t] = op.index
    for t in graph.outputs:
        last[t] = n_ops
    buffers = []
    for t, start in first.items():
        buffers.append(Buffer(t, graph.tensor(t).nbytes, start, max(last.get(t, start), start)))
    return buffers
