"""The analysis figures: compact at a 30-block model's size, colour scales that show differences."""

from __future__ import annotations

import matplotlib.image
import pytest
import torch

from samora.analysis.plots import DPI, WIDTH, gate_tables, plot_task_gates, plot_usage, usage_norm
from samora.data.tasks import BENCHMARKS

TASKS = BENCHMARKS["commonsense"]  # the 9 commonsense tasks, in id order


def smollm2_sized_gates(blocks: int = 30) -> dict[str, dict[str, float]]:
    """g_task of q/k/v/o in every block of a 30-block model (SmolLM2-135M), 9 tasks and the unseen route."""
    return {
        f"model.layers.{b}.self_attn.{p}_proj": {t: (b * 4 + i) / 1000 for i, t in enumerate(TASKS + ["<unseen>"])}
        for b in range(blocks)
        for p in "qkvo"
    }


def test_gate_tables_put_each_value_at_its_task_and_block():
    gates = smollm2_sized_gates()
    rows, blocks, tables = gate_tables(gates)
    assert rows == TASKS + ["<unseen>"] and blocks == list(range(30))
    assert list(tables) == [f"self_attn.{p}_proj" for p in "qkvo"]
    assert all(table.shape == (10, 30) for table in tables.values())
    assert tables["self_attn.v_proj"][3, 17].item() == pytest.approx(gates["model.layers.17.self_attn.v_proj"]["piqa"])


def test_gate_tables_mark_blocks_without_a_module_as_missing():
    gates = {"h.0.attn.c_proj": {"a": 0.2}, "h.0.mlp.c_proj": {"a": 0.3}, "h.1.attn.c_proj": {"a": 0.4}}
    _, blocks, tables = gate_tables(gates)
    assert blocks == [0, 1] and list(tables) == ["attn.c_proj", "mlp.c_proj"]  # same last name, two kinds
    assert torch.isnan(tables["mlp.c_proj"][0, 1]) and tables["attn.c_proj"][0, 1].item() == pytest.approx(0.4)


def test_task_gate_figure_stays_compact_for_a_30_block_model(tmp_path):
    """One row per task (not per layer): the figure keeps the report's width and a readable height."""
    path = plot_task_gates(smollm2_sized_gates(), tmp_path / "task_gates.png")
    height, width, _ = matplotlib.image.imread(path).shape
    assert width == WIDTH * DPI and height < 1.6 * width  # main's figure was 1140 x 3012


def test_usage_colour_scale_is_centred_on_uniform_use():
    specialised = torch.tensor([[0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    norm = usage_norm([specialised], experts=3)
    assert float(norm(1 / 3)) == pytest.approx(0.5)  # uniform use is the centre (white)
    assert float(norm(0.6)) == pytest.approx(1.0)  # the largest deviation spans the scale
    assert float(norm(0.1)) < 0.5 - 0.3  # below-uniform use is clearly on the other side
    small = usage_norm([torch.tensor([[0.35, 0.33, 0.32]])], experts=3)
    assert float(small(0.35)) > 0.9  # a small deviation still reaches the end of the scale


def test_usage_figure_has_the_report_width(tmp_path):
    usage = {f"model.layers.{b}.self_attn.q_proj": torch.softmax(torch.randn(9, 3), -1) for b in range(12)}
    mean = torch.stack(list(usage.values())).mean(0)
    path = plot_usage(usage, mean, TASKS, tmp_path / "usage.png")
    height, width, _ = matplotlib.image.imread(path).shape
    assert width == WIDTH * DPI and height < 1.4 * width
