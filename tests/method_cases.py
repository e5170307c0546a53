"""The cases the contract suite runs: every registered method, and SAMoRA's ablations.

``METHOD_CASES`` is keyed by method name (``samora.METHODS``): each method maps its case names to a
function that builds a small config for the given task names (the suite sets target_modules per
architecture). :func:`contract_cases` expands it over the registry, so a registered method without
an entry here becomes a case that fails every contract test, and
``test_contract.py::test_every_registered_method_has_a_case`` names it. ``INIT_TOLERANCE`` holds the
methods whose adapted model equals the base only up to round-off at init (absolute tolerance on
logits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from samora import (
    AdapterConfig,
    HydraLoRAConfig,
    LoRAConfig,
    MoELoRAConfig,
    MoOREConfig,
    MTLLoRAConfig,
    MultiLoRAConfig,
    SAMoRAConfig,
    SMoRAConfig,
)

Case = Callable[[list[str]], AdapterConfig]

METHOD_CASES: dict[str, dict[str, Case]] = {
    "lora": {"lora": lambda tasks: LoRAConfig(r=4, tasks=tasks)},
    "samora": {
        "samora": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks),
        "samora_linear_router": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks, router="linear"),
        "samora_mlp_router": lambda tasks: SAMoRAConfig(
            r=4, num_experts=3, tasks=tasks, router="mlp", router_hidden=8
        ),
        "samora_no_scaling": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks, scaling=False),
        "samora_released": lambda tasks: SAMoRAConfig(r=4, num_experts=3, tasks=tasks, variant="released"),
    },
    "hydralora": {
        "hydralora": lambda tasks: HydraLoRAConfig(r=4, num_experts=3, tasks=tasks),
        "hydralora_mlp_router": lambda tasks: HydraLoRAConfig(
            r=4, num_experts=3, tasks=tasks, router="mlp", router_hidden=8
        ),
    },
    "mtllora": {
        "mtllora": lambda tasks: MTLLoRAConfig(r=4, num_experts=3, tasks=tasks),
        "mtllora_diagonal": lambda tasks: MTLLoRAConfig(r=4, num_experts=3, tasks=tasks, task_transform="diagonal"),
    },
    "moelora": {"moelora": lambda tasks: MoELoRAConfig(r=4, num_experts=2, task_dim=8, tasks=tasks)},
    "multilora": {"multilora": lambda tasks: MultiLoRAConfig(r=4, num_experts=3, tasks=tasks)},
    "smora": {"smora": lambda tasks: SMoRAConfig(r=8, top_k=2, tasks=tasks)},
    "moore": {"moore": lambda tasks: MoOREConfig(r=4, num_experts=8, task_dim=4, tasks=tasks)},
}

INIT_TOLERANCE: dict[str, float] = {
    "moore": 1e-6,  # W rebuilt from its float32 SVD: measured at most 4e-7 on these models' logits
}


def missing_cases(methods: Iterable[str]) -> list[str]:
    """The registered methods that have no entry in ``METHOD_CASES``."""
    return sorted(set(methods) - set(METHOD_CASES))


def contract_cases(methods: Iterable[str]) -> dict[str, Case]:
    """Case name -> config builder for every method in ``methods`` (the registry), in name order.

    A method with no entry in ``METHOD_CASES`` still gets a case, ``"<method> (no case)"``, whose
    builder fails the test, so no registered method can skip the contract.
    """
    cases: dict[str, Case] = {}
    for method in sorted(methods):
        cases.update(METHOD_CASES.get(method) or {f"{method} (no case)": _no_case(method)})
    return cases


def _no_case(method: str) -> Case:
    def fail(tasks: list[str]) -> AdapterConfig:
        pytest.fail(
            f"method {method!r} is registered but has no case: add one to METHOD_CASES in tests/method_cases.py",
            pytrace=False,
        )

    return fail


CASES: dict[str, Case] = {case: build for cases in METHOD_CASES.values() for case, build in cases.items()}
