"""No fast path builds per-expert outputs (seq, N, d_out), not even for one example.

Every tensor a torch function returns during ``delta`` is recorded; the plain ``delta_reference``
path must trip the same detector, so the check can fail.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import samora
from samora.methods import get_method
from samora.routing import RoutingState
from tests.helpers import LargestTensor

# d_out is large next to everything else, so only per-expert outputs reach S * N * D_OUT.
B, S, D_IN, D_OUT, R, N = 2, 3, 6, 40, 2, 4
TASKS = ["a", "b"]
CONFIGS = {
    "hydralora": samora.HydraLoRAConfig(r=R, num_experts=N),
    "mtllora": samora.MTLLoRAConfig(r=R, num_experts=N, tasks=TASKS),
    "moelora": samora.MoELoRAConfig(r=2 * N, num_experts=N, tasks=TASKS),
    "multilora": samora.MultiLoRAConfig(r=R, num_experts=N),
    "samora": samora.SAMoRAConfig(r=R, num_experts=N, tasks=TASKS, scale_init="ones"),
    "smora_dense": samora.SMoRAConfig(r=N, top_k=2, compute="dense"),
    "smora_sparse": samora.SMoRAConfig(r=N, top_k=2, compute="sparse"),
}


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_fast_path_never_builds_per_expert_outputs(method):
    config = CONFIGS[method]
    layer = get_method(config.method)[1](nn.Linear(D_IN, D_OUT), config, RoutingState())
    layer.reset_parameters()
    x, task_ids = torch.randn(B, S, D_IN), torch.tensor([0, 1])
    with torch.no_grad():
        with LargestTensor() as fast:
            layer.delta(x, task_ids)
        with LargestTensor() as reference:
            layer.delta_reference(x, task_ids)
    one_example_per_expert = S * N * D_OUT
    assert reference.largest >= one_example_per_expert  # the detector sees the plain path's stack
    assert fast.largest < one_example_per_expert
