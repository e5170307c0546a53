"""Mechanical check that no adapter builds a per-expert activation of size batch x seq x N x d_out.

A mixture of N experts can compute ``sum_i g_i B_i z`` by first stacking every expert's output,
``(batch, seq, N, d_out)``, and then mixing: N times the memory and traffic of the layer's output.
:class:`TensorShapeRecorder` (a ``TorchDispatchMode``) sees the result of every aten operation run
while it is active, forward and backward alike; :func:`per_expert_activations` runs one training
step under it and returns the shapes that hold such a tensor.

A shape counts as a per-expert activation when it has ``batch * seq * N * d_out`` elements and,
once one dimension equal to N and one equal to d_out are set aside, the rest multiply to
``batch * seq``: ``(b, s, N, d)``, ``(N, b, s, d)`` and ``(b * s, N, d)`` count; the hidden state
``(b, s, N * d)`` of a layer whose width happens to equal N * d_out does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class TensorShapeRecorder(TorchDispatchMode):
    """Records the shape of every tensor produced by an aten operation while active."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(result):
            if isinstance(leaf, torch.Tensor):
                self.shapes.add(tuple(leaf.shape))
        return result


def is_per_expert_activation(shape: tuple[int, ...], tokens: int, experts: int, d_out: int) -> bool:
    """Whether ``shape`` holds one d_out-sized vector per token and expert (see the module doc)."""
    if experts < 2 or math.prod(shape) != tokens * experts * d_out:
        return False
    rest = list(shape)
    for dim in (experts, d_out):
        if dim not in rest:
            return False
        rest.remove(dim)
    return math.prod(rest) == tokens


def per_expert_activations(
    step: Callable[[], object], *, tokens: int, experts: int, d_outs: Iterable[int]
) -> list[tuple[int, ...]]:
    """Run ``step`` (forward + backward) under a recorder; the shapes that are per-expert activations."""
    with TensorShapeRecorder() as recorder:
        step()
    d_outs = sorted(set(d_outs))
    return sorted(
        shape for shape in recorder.shapes if any(is_per_expert_activation(shape, tokens, experts, d) for d in d_outs)
    )
