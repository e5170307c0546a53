"""Declarative config rules: types, choices and bounds declared once on the fields, checked by one function."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

import samora
from samora.config import AdapterConfig, Rule, field_rules, setting, validate_fields
from samora.routing import RoutingState

SRC = Path(__file__).resolve().parents[1] / "src" / "samora"

MESSAGES = [
    (samora.LoRAConfig, {"r": 0}, "r must be a positive int, got 0"),
    (samora.LoRAConfig, {"r": 8.5}, "r must be a positive int, got 8.5"),
    (samora.LoRAConfig, {"r": True}, "r must be a positive int, got True"),
    (samora.LoRAConfig, {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
    (samora.LoRAConfig, {"alpha": float("nan")}, "alpha must be a finite number, got nan"),
    (samora.LoRAConfig, {"alpha": -1}, r"alpha \(the update's scale numerator, alpha / r\) must be > 0, got -1"),
    (samora.LoRAConfig, {"base_model": 3}, "base_model must be a string or None, got 3"),
    (samora.MoELoRAConfig, {"tasks": ["a"], "alpha": 0.0}, r"alpha \(the update's scale numerator.* > 0, got 0.0"),
    (samora.MoELoRAConfig, {"tasks": ["a"], "r": 0}, "r must be a positive int, got 0"),
    (samora.MoELoRAConfig, {"tasks": ["a"], "task_dim": 0}, "task_dim must be a positive int, got 0"),
    (samora.MoOREConfig, {"tasks": ["a"], "task_dim": "8"}, "task_dim must be a positive int, got '8'"),
    (samora.SAMoRAConfig, {"task_dim": -2}, "task_dim must be a positive int, got -2"),
    (samora.SAMoRAConfig, {"router": "moe"}, "router must be one of 'semantic', 'mlp', 'linear', got 'moe'"),
    (samora.SAMoRAConfig, {"variant": "authors"}, "variant must be 'paper' or 'released', got 'authors'"),
    (samora.SAMoRAConfig, {"gate_bias": "no"}, "gate_bias must be True or False or None, got 'no'"),
    (samora.SAMoRAConfig, {"lambda_match": -0.5}, "lambda_match must be >= 0, got -0.5"),
    (samora.SAMoRAConfig, {"scaling": 1}, "scaling must be True or False, got 1"),
    (samora.SMoRAConfig, {"compute": "fast"}, "compute must be one of 'auto', 'dense', 'sparse', got 'fast'"),
    (samora.SMoRAConfig, {"top_k": 65}, r"top_k must be an int in \[1, r=64\], got 65; lower top_k or raise r"),
    (
        samora.HydraLoRAConfig,
        {"router_input": "clean"},
        r"router_input must be 'dropout' \(route on dropout\(x\)\) or 'input' \(on x\), got 'clean'",
    ),
]


@pytest.mark.parametrize("config_cls,values,message", MESSAGES, ids=[f"{c.__name__}-{v}" for c, v, _ in MESSAGES])
def test_a_bad_value_names_the_field_what_it_accepts_and_the_value(config_cls, values, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        config_cls(**values)


def test_rules_come_from_the_fields_and_survive_a_changed_default():
    rules = field_rules(samora.MoELoRAConfig)
    assert rules["r"] == Rule(kind=int, ge=1)  # MoELoRA sets r = 16; the rule is AdapterConfig's
    assert rules["alpha"].gt == 0 and rules["alpha"].meaning.startswith("the update's scale")  # alpha = 32 there
    assert rules["task_dim"].expected() == "a positive int"
    assert field_rules(samora.HydraLoRAConfig)["router_input"].values == ("dropout", "input")
    samora_rules = field_rules(samora.SAMoRAConfig)
    assert samora_rules["temperature"].expected() == "> 0"
    assert samora_rules["scale_init"].values == ("svd", "ones") and samora_rules["scale_init"].optional
    assert samora_rules["scaling"].kind is bool
    # a list or dict field has its type's rule; the method's validate checks the rest (non-empty, unique)
    assert samora_rules["target_modules"].expected() == "a list of strings or a string"
    assert samora_rules["tasks"].expected() == "a list of strings"


def test_every_registered_default_satisfies_its_own_rules():
    for config_cls, _ in samora.METHODS.values():
        config = config_cls(tasks=["a", "b"])
        for name, rule in field_rules(config_cls).items():
            assert rule.violation(name, getattr(config, name)) is None, (config_cls.__name__, name)


def test_validate_fields_checks_only_the_names_given():
    config = samora.LoRAConfig()
    config.r, config.dropout = 0, 2.0  # changed after construction: not yet checked
    validate_fields(config, ["alpha"])
    with pytest.raises(ValueError, match="dropout must be in"):
        validate_fields(config, ["dropout"])
    with pytest.raises(ValueError, match="^r must be"):
        validate_fields(config)


def test_a_new_config_declares_its_rules_with_setting():
    @dataclasses.dataclass
    class DemoConfig(AdapterConfig):
        method = "demo"
        strength: float = setting(0.5, ge=0, le=1, meaning="how much")
        mode: str = setting("a", choices={"a": "first", "b": "second"})

    assert DemoConfig(strength=1.0).strength == 1.0
    with pytest.raises(ValueError, match=r"^strength \(how much\) must be in \[0, 1\], got 1.5$"):
        DemoConfig(strength=1.5)
    with pytest.raises(ValueError, match=r"^mode must be 'a' \(first\) or 'b' \(second\), got 'c'$"):
        DemoConfig(mode="c")


def test_scaled_configs_give_the_scale_their_layers_use():
    assert samora.LoRAConfig(r=4, alpha=12).scaling == 3.0
    assert samora.MoELoRAConfig(tasks=["a"]).scaling == 32.0 / 16
    assert samora.SMoRAConfig(r=64, top_k=8, alpha=16).scaling == 2.0  # alpha / top_k
    assert not hasattr(samora.SAMoRAConfig, "alpha")  # eq. (7) has no alpha / r
    config = samora.LoRAConfig(r=2, alpha=6)
    layer = samora.get_method("lora")[1](nn.Linear(5, 3), config, RoutingState())
    layer.reset_parameters()
    with torch.no_grad():
        layer.lora_B.normal_()
    assert torch.allclose(layer.delta_weight(), 3.0 * layer.lora_B @ layer.lora_A)


LIBRARY = [
    "config/*.py",
    "routing.py",
    "inject.py",
    "bound.py",
    "persistence.py",
    "merging.py",
    "accounting.py",
    "peft_format.py",
    "method_docs.py",
    "methods/*.py",
    "analysis/features.py",
]


def test_the_library_imports_no_private_name_from_another_module():
    offenders = []
    for path in (path for pattern in LIBRARY for path in SRC.glob(pattern)):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("samora"):
                offenders += [
                    f"{path.relative_to(SRC)}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and alias.name != "__version__"
                ]
    assert offenders == []


def test_field_rules_returns_a_copy_the_caller_may_change():
    rules = field_rules(samora.LoRAConfig)
    rules.clear()
    assert "r" in field_rules(samora.LoRAConfig)
    with pytest.raises(ValueError, match="^r must be a positive int"):
        samora.LoRAConfig(r=0)
