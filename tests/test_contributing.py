"""CONTRIBUTING.md's "Adding a method: four files", checked by doing it.

A copy of this checkout gets a throwaway method, DiagLoRA (``y = W x + B (d * (A x))``), in exactly the
four places CONTRIBUTING.md names: its module under ``src/samora/methods/``, a case in
``tests/method_cases.py``, its golden test file, and the regenerated ``docs/methods.md``. Then the
registry tests, the method's golden test, the contract suite on its case, the config rules and the
methods-table check all pass in the copy; nothing else had to change.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.helpers import ROOT, subprocess_environment

METHOD_MODULE = """
\"\"\"DiagLoRA (a throwaway method of tests/test_contributing.py): LoRA with a learned diagonal between A and B.\"\"\"

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from samora.config import MethodCard, ScaledConfig
from samora.methods.base import AdapterLayer
from samora.methods.registry import register


@dataclass
class DiagLoRAConfig(ScaledConfig):
    \"\"\"DiagLoRA: ``y = W x + (alpha / r) B (d * (A x))``.\"\"\"

    method = "diaglora"
    card = MethodCard(
        title="DiagLoRA (test only)",
        equation="(alpha/r) B diag(d) A x",
        router="none",
        init="A kaiming-uniform, d = 1, B = 0",
        parameters="r (d_in + d_out + 1)",
    )


@register(DiagLoRAConfig)
class DiagLoRALayer(AdapterLayer):
    \"\"\"``delta(x) = (alpha / r) B (d * (A x))``, A: (r, d_in), d: (r,), B: (d_out, r).\"\"\"

    prefix = "diag_"

    def __init__(self, base_layer, config: DiagLoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        self.diag_A = self.adapter_parameter(config.r, self.in_features)
        self.diag_d = self.adapter_parameter(config.r)
        self.diag_B = self.adapter_parameter(self.out_features, config.r)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.diag_A, a=math.sqrt(5))
        nn.init.ones_(self.diag_d)
        nn.init.zeros_(self.diag_B)

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        \"\"\"x: (batch, ..., d_in) -> (batch, ..., d_out).\"\"\"
        return ((x @ self.diag_A.T) * self.diag_d) @ self.diag_B.T * self.config.scaling

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        \"\"\"The same update through the dense matrix B diag(d) A.\"\"\"
        return x @ (self.diag_B @ torch.diag(self.diag_d) @ self.diag_A).T * self.config.scaling
"""

CASE = """
from samora.methods.diaglora import DiagLoRAConfig  # noqa: E402

METHOD_CASES["diaglora"] = {"diaglora": lambda tasks: DiagLoRAConfig(r=4, tasks=tasks)}
"""

GOLDEN_TEST = """
import numpy as np
import torch
from torch import nn

from samora.methods.diaglora import DiagLoRAConfig, DiagLoRALayer
from samora.routing import RoutingState


def test_golden_against_float64_equation():
    torch.manual_seed(0)
    layer = DiagLoRALayer(nn.Linear(6, 5).double(), DiagLoRAConfig(r=2, alpha=4.0, dropout=0.0), RoutingState(),
                          adapter_dtype=torch.float64)
    with torch.no_grad():
        for parameter in (layer.diag_A, layer.diag_d, layer.diag_B):
            parameter.normal_()
    a, d, b = (p.detach().numpy() for p in (layer.diag_A, layer.diag_d, layer.diag_B))
    w, bias = layer.base_layer.weight.detach().numpy(), layer.base_layer.bias.detach().numpy()
    x = torch.randn(3, 6, dtype=torch.float64)
    expected = np.stack([w @ v + bias + 2.0 * (b @ (d * (a @ v))) for v in x.numpy()])
    assert np.allclose(layer(x).detach().numpy(), expected, atol=1e-12, rtol=0)
"""

CHECKS = [
    "tests/methods/test_registry.py",
    "tests/methods/test_diaglora.py",
    "tests/test_contract.py",
    "tests/test_config.py",
    "tests/test_accounting.py::test_committed_methods_table_is_up_to_date",
    "-k",
    "diaglora or registry or registered or test_committed_methods_table or test_golden_against",
]


def _copy_checkout(destination):
    for part in ("src", "tests", "docs"):
        shutil.copytree(ROOT / part, destination / part, ignore=shutil.ignore_patterns("__pycache__", "goldens"))
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")


def _run(arguments, cwd):
    environment = subprocess_environment()
    environment["PYTHONPATH"] = f"{cwd / 'src'}:{cwd}"
    return subprocess.run(
        [sys.executable, *arguments], cwd=cwd, env=environment, capture_output=True, text=True, timeout=600
    )


def test_a_new_method_needs_exactly_the_four_files_contributing_names(tmp_path):
    _copy_checkout(tmp_path)
    (tmp_path / "src/samora/methods/diaglora.py").write_text(METHOD_MODULE.lstrip())
    with (tmp_path / "tests/method_cases.py").open("a") as cases:
        cases.write(CASE)
    (tmp_path / "tests/methods/test_diaglora.py").write_text(GOLDEN_TEST.lstrip())
    stale = _run(["-m", "samora.run.method_docs", "--check"], tmp_path)
    assert stale.returncode != 0, "the methods table should be stale until it is regenerated"
    regenerated = _run(["-m", "samora.run.method_docs"], tmp_path)
    assert regenerated.returncode == 0, regenerated.stderr[-2000:]
    assert "DiagLoRA" in (tmp_path / "docs/methods.md").read_text()

    result = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *CHECKS], tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    contract_runs = _run(
        ["-m", "pytest", "-q", "--collect-only", "tests/test_contract.py", "-k", "diaglora"], tmp_path
    )
    assert "diaglora" in contract_runs.stdout and " 0 selected" not in contract_runs.stdout
