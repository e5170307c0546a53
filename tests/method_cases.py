"""The methods (and SAMoRA's ablations) that the contract suite runs.

Each case builds a small config for the given task names; the suite sets target_modules per
architecture. ``INIT_TOLERANCE`` holds the methods whose adapted model equals the base only up to
round-off at init (absolute tolerance on logits).
"""

from __future__ import annotations

from collections.abc import Callable

from samora import (AdapterConfig, HydraLoRAConfig, LoRAConfig, MoELoRAConfig, MoOREConfig, MTLLoRAConfig,
                    MultiLoRAConfig, SAMoRAConfig, SMoRAConfig)

CASES: dict[str, Callable[[list[str]], AdapterConfig]] = {
    "lora": lambda tasks: LoRAConfig(r=4, tasks=tasks),
    "samora": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks),
    "samora_linear_router": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks, router="linear"),
    "samora_no_scaling": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks, scaling=False),
    "samora_released": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks, variant="released"),
    "hydralora": lambda tasks: HydraLoRAConfig(r=4, num_experts=3, tasks=tasks),
    "hydralora_mlp_router": lambda tasks: HydraLoRAConfig(r=4, num_experts=3, tasks=tasks, router="mlp", router_hidden=8),
    "mtllora": lambda tasks: MTLLoRAConfig(r=4, num_experts=3, tasks=tasks),
    "mtllora_diagonal": lambda tasks: MTLLoRAConfig(r=4, num_experts=3, tasks=tasks, task_transform="diagonal"),
    "moelora": lambda tasks: MoELoRAConfig(r=4, num_experts=2, task_dim=8, tasks=tasks),
    "multilora": lambda tasks: MultiLoRAConfig(r=4, num_experts=3, tasks=tasks),
    "smora": lambda tasks: SMoRAConfig(r=8, top_k=2, tasks=tasks),
    "moore": lambda tasks: MoOREConfig(r=4, num_experts=8, task_dim=4, tasks=tasks),
}

INIT_TOLERANCE: dict[str, float] = {
    "moore": 1e-6,  # W rebuilt from its float32 SVD: measured at most 4e-7 on these models' logits
}
