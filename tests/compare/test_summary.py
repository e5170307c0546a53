"""The comparison of finished cells (no training): table values, paired tests and the answer in words."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from samora.compare.spec import compare_specs
from samora.compare.summary import write_comparison
from samora.run.run_config import ConfigError, load_run_config

TASKS = {"boolq": 2, "arc_easy": 4}  # task -> choices
N = 200


def write_cell(folder, correct_rate, seed, rng):
    """A finished cell whose per-example correctness is drawn at ``correct_rate``."""
    folder.mkdir(parents=True)
    records, tasks = [], {}
    for task, choices in TASKS.items():
        golds = rng.integers(0, choices, N)
        right = rng.random(N) < correct_rate
        preds = np.where(right, golds, (golds + 1) % choices)
        records += [
            {"id": i, "task": task, "gold": int(g), "pred": int(p), "pred_norm": int(p)}
            for i, (g, p) in enumerate(zip(golds, preds))
        ]
        tasks[task] = {
            "n": N,
            "majority_baseline": 0.55,
            "label_distribution": {"gold": {"0": N // 2, "1": N // 2}, "pred": {"0": N // 2, "1": N // 2}},
        }
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "results.json").write_text(json.dumps({"tasks": tasks}))
    (folder / "done.json").write_text(json.dumps({"identity": {}, "wall_s": 1.5}))
    if seed is not None:
        (folder / "cell.json").write_text(
            json.dumps(
                {
                    "seed": seed,
                    "parameters": {"matched": 100},
                    "train_wall_s": 1.0,
                    "eval_wall_s": 0.5,
                    "train": {"train_loss": 1.0, "steps": 2},
                }
            )
        )
    return records


def budget_plan(specs) -> dict:
    """The parameter plan of a grid whose every row matched SAMoRA's budget within 10%."""
    return {
        spec.label: {
            "requested": 10,
            "matched": 9,
            "budget": 9,
            "relative_gap": 0.0,
            "within_10_percent": True,
            "matched_by": "r",
            "budget_source": spec.label == "samora",
            "config": {},
        }
        for spec in specs
    }


def compare_three_methods(tmp_path, *extra: str) -> tuple[dict, dict]:
    """The comparison of a finished 3-method x 2-seed grid and a base cell, and each cell's records by slug.

    SAMoRA is right 80% of the time, LoRA 50%, SAMoRA with a linear router 52%, the base 30%.
    """
    config = load_run_config(
        preset="demo",
        overrides=[
            f"output_dir={tmp_path}",
            "compare.methods=[samora, lora, 'samora(router=linear)']",
            "compare.seeds=[1, 2]",
            "compare.reference=lora",
            "compare.budget=samora",
            "compare.also_against=[samora]",
            "compare.bootstrap_samples=1000",
            *extra,
        ],
    )
    specs, reference, _ = compare_specs(config)
    rates = {"samora": 0.8, "lora": 0.5, "samora-router-linear": 0.52}
    rng = np.random.default_rng(0)
    written = {
        slug: [write_cell(tmp_path / "cells" / f"{slug}-seed{seed}", rate, seed, rng) for seed in (1, 2)]
        for slug, rate in rates.items()
    }
    write_cell(tmp_path / "cells" / "base", 0.3, None, rng)
    return write_comparison(config, tmp_path, specs, reference, budget_plan(specs)), written


def test_comparison_of_finished_cells(tmp_path):
    comparison, written = compare_three_methods(tmp_path)

    boolq = [r["pred"] == r["gold"] for cell in written["samora"] for r in cell if r["task"] == "boolq"]
    assert comparison["table"]["samora"]["tasks"]["boolq"]["value"] == pytest.approx(np.mean(boolq))
    vs_lora = comparison["paired"]["vs_reference"]
    assert vs_lora["samora"]["significant"] and vs_lora["samora"]["ci95"][0] > 0.1
    assert not vs_lora["samora(router=linear)"]["significant"]
    assert comparison["paired"]["vs_also"]["samora"]["lora"]["value"] == pytest.approx(-vs_lora["samora"]["value"])
    assert all(test["significant"] for test in comparison["paired"]["vs_base"].values())
    answer = comparison["answer"]
    stated = re.match(
        r"samora (\S+) \+- (\S+), lora (\S+) \+- \S+, samora\(router=linear\) \S+ \+- \S+, "
        r"base (\S+) \+- \S+ \(mean acc over 2 tasks",
        answer[0],
    )
    assert stated, answer[0]
    table = comparison["table"]
    low, high = table["samora"]["mean"]["ci95"]
    assert [float(v) for v in stated.groups()] == pytest.approx(
        [
            100 * table["samora"]["mean"]["value"],
            50 * (high - low),
            100 * table["lora"]["mean"]["value"],
            100 * table["base"]["mean"]["value"],
        ],
        abs=0.051,
    )
    assert "95% CI, n=200 examples per task, 2 seeds per method" in answer[0]
    paired = comparison["paired"]
    family = [test for group in ("vs_reference", "vs_base") for test in paired[group].values()]
    family += [test for tests in paired["vs_also"].values() for test in tests.values()]
    assert len(family) == 2 + 3 + 2 and paired["family_size"] == 6  # lora - samora is samora - lora's twin
    assert all(test["p_value"] <= test["p_holm"] <= 1 for test in family)
    assert all(test["significant_holm"] == (test["p_holm"] < 0.05) for test in family)
    smallest = min(family, key=lambda test: test["p_value"])
    assert smallest["p_holm"] == pytest.approx(min(1.0, 6 * smallest["p_value"]))
    assert any(
        line.startswith("samora - lora = +")
        and line.endswith("significant (p < 0.05 after Holm's correction for 6 distinct tests)")
        for line in answer
    )
    assert any(
        line.startswith("samora(router=linear) - lora") and "not significant at this scale" in line for line in answer
    )
    markdown = (tmp_path / "comparison.md").read_text().splitlines()
    assert markdown[2] == answer[0] and "| lora - samora |" in "\n".join(markdown)
    assert (tmp_path / "comparison.png").is_file()
    assert json.loads((tmp_path / "comparison.json").read_text())["table"] == json.loads(
        json.dumps(comparison["table"])
    )


def test_cells_on_different_examples_are_refused(tmp_path):
    config = load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}", "compare.baseline=false"])
    specs, reference, _ = compare_specs(config)
    rng = np.random.default_rng(0)
    write_cell(tmp_path / "cells" / "samora-seed41", 0.5, 41, rng)
    records = write_cell(tmp_path / "cells" / "lora-seed41", 0.5, 41, rng)
    records[0]["id"] = 999
    (tmp_path / "cells" / "lora-seed41" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ValueError, match="different boolq examples"):
        write_comparison(config, tmp_path, specs, reference, {})


def set_labels(cell, task, gold, pred):
    """Give ``task`` of a finished cell these gold and predicted label counts (index -> count)."""
    results = json.loads((cell / "results.json").read_text())
    results["tasks"][task].update(
        majority_baseline=max(gold.values()) / N, label_distribution={"gold": gold, "pred": pred}
    )
    (cell / "results.json").write_text(json.dumps(results))


def test_a_choice_predicted_far_more_often_than_it_is_gold_is_flagged_as_label_bias(tmp_path):
    """A minority answer given most of the time is a label bias even below the majority share + 0.3
    (boolq: 40% gold "no", answered "no" 88% of the time); a mild lean is not flagged."""
    config = load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}", "compare.baseline=false"])
    specs, reference, _ = compare_specs(config)
    rng = np.random.default_rng(0)
    cells = {slug: tmp_path / "cells" / f"{slug}-seed41" for slug in ("samora", "lora")}
    for cell in cells.values():
        write_cell(cell, 0.5, 41, rng)
    set_labels(cells["samora"], "boolq", gold={"0": 121, "1": 79}, pred={"0": 25, "1": 175})
    set_labels(cells["lora"], "boolq", gold={"0": 121, "1": 79}, pred={"0": 150, "1": 50})
    set_labels(cells["lora"], "arc_easy", gold={str(c): 50 for c in range(4)}, pred={"0": 120, "1": 80})

    comparison = write_comparison(config, tmp_path, specs, reference, {})

    flagged = {(b["row"], b["task"]): b for b in comparison["label_bias"]}
    assert set(flagged) == {("samora", "boolq"), ("lora", "arc_easy")}
    assert flagged["samora", "boolq"] == {
        "row": "samora",
        "cell": "samora-seed41",
        "task": "boolq",
        "choice": 1,
        "pred_share": pytest.approx(0.875),
        "gold_share": pytest.approx(0.395),
    }
    assert flagged["lora", "arc_easy"]["choice"] == 0
    assert comparison["answer"][-1] == (
        "Label bias: one choice is predicted far more often than it is the gold answer in "
        "lora:arc_easy (choice 0 in up to 60% of predictions, 25% of golds), "
        "samora:boolq (choice 1 in up to 88% of predictions, 40% of golds); "
        "scores there measure that bias, not knowledge."
    )


def test_a_grid_run_in_part_is_summarised_as_far_as_it_got(tmp_path):
    """Rows hold their finished seeds, a row with none is only listed as pending, and each paired
    test runs on the seeds both rows finished."""
    config = load_run_config(
        preset="demo",
        overrides=[
            f"output_dir={tmp_path}",
            "compare.methods=[samora, lora, moelora]",
            "compare.seeds=[1, 2]",
            "compare.reference=lora",
            "compare.bootstrap_samples=500",
        ],
    )
    specs, reference, _ = compare_specs(config)
    rng = np.random.default_rng(1)
    for cell, rate, seed in [("samora-seed1", 0.8, 1), ("lora-seed1", 0.5, 1), ("samora-seed2", 0.8, 2)]:
        write_cell(tmp_path / "cells" / cell, rate, seed, rng)
    write_cell(tmp_path / "cells" / "base", 0.3, None, rng)
    (tmp_path / "cells" / "lora-seed2").mkdir()  # started, never finished: no done.json
    comparison = write_comparison(config, tmp_path, specs, reference, {})

    assert comparison["pending"] == ["moelora-seed1", "lora-seed2", "moelora-seed2"]
    assert {label: row["seeds"] for label, row in comparison["table"].items()} == {
        "samora": [1, 2],
        "lora": [1],
        "base": [],
    }
    assert comparison["paired"]["vs_reference"]["samora"]["seeds"] == [1]
    assert comparison["paired"]["vs_base"]["samora"]["seeds"] == [1, 2]
    assert comparison["answer"][1].startswith("PARTIAL: 3 of 6 training cells finished; not yet run: moelora-seed1, ")
    assert "1-2 seeds per method" in comparison["answer"][0]
    assert "| samora | 1,2 |" in (tmp_path / "comparison.md").read_text()


def test_a_grid_without_a_finished_cell_says_so(tmp_path):
    config = load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}"])
    specs, reference, _ = compare_specs(config)
    with pytest.raises(ConfigError, match="no finished cell yet"):
        write_comparison(config, tmp_path, specs, reference, {})


def test_the_plot_keeps_one_readable_line_per_row_however_many_rows(tmp_path):
    """The figure grows in height with the rows (a dozen rows stay legible) and not in width."""
    from matplotlib.image import imread

    from samora.compare.plot import plot_comparison

    comparison, _ = compare_three_methods(tmp_path)
    table = comparison["table"]
    many = {**comparison, "table": {f"{label} {k}": row for k in range(4) for label, row in table.items()}}
    few_image = imread(plot_comparison(comparison, tmp_path / "few.png"))
    many_image = imread(plot_comparison(many, tmp_path / "many.png"))
    assert few_image.shape[1] == many_image.shape[1]
    assert many_image.shape[0] > 1.5 * few_image.shape[0]


def test_holm_counts_a_pair_tested_both_ways_once(tmp_path):
    """samora - lora (against the reference) and lora - samora (against also_against=samora) are one
    test: the family holds the 6 distinct pairs, the twins share p and p_holm, and each direction
    keeps its own sign; the Holm values are those of the 6 distinct p-values."""
    from samora.evaluation.statistics import holm_adjusted

    comparison, _ = compare_three_methods(tmp_path)
    paired = comparison["paired"]
    forward, backward = paired["vs_reference"]["samora"], paired["vs_also"]["samora"]["lora"]
    assert forward["p_value"] == backward["p_value"] and forward["p_holm"] == backward["p_holm"]
    assert forward["value"] == pytest.approx(-backward["value"]) and forward["value"] > 0
    distinct = {
        frozenset((label, other)): test
        for group, other in (
            (paired["vs_reference"], "lora"),
            (paired["vs_base"], "base"),
            (paired["vs_also"]["samora"], "samora"),
        )
        for label, test in group.items()
    }
    assert paired["family_size"] == len(distinct) == 6
    tests = list(distinct.values())
    assert [t["p_holm"] for t in tests] == pytest.approx(holm_adjusted([t["p_value"] for t in tests]))
    markdown = (tmp_path / "comparison.md").read_text()
    assert "adjusted for the 6 distinct tests of this comparison" in markdown
    assert "A - B and B - A, is one test" in markdown
    shows = next(line for line in comparison["answer"] if line.startswith("What it shows"))
    assert "samora vs lora" in shows and "lora vs samora" not in shows


def test_a_grid_trained_as_written_does_not_claim_matched_budgets(tmp_path):
    matched, _ = compare_three_methods(tmp_path / "matched")
    as_written, _ = compare_three_methods(tmp_path / "as-written", "compare.match_budget=false")
    shows = {
        name: next(line for line in comparison["answer"] if line.startswith("What it shows"))
        for name, comparison in (("matched", matched), ("as_written", as_written))
    }
    assert "with parameter budgets matched to samora" in shows["matched"]
    assert "budgets matched" not in shows["as_written"] and "trained as written" in shows["as_written"]
    markdown = (tmp_path / "as-written" / "comparison.md").read_text()
    assert "## Trainable parameters (each method trained as written" in markdown


def test_a_row_left_outside_the_budget_is_named_where_the_budgets_are_said_to_be_matched():
    from samora.compare.report import _budget_phrase

    plan = {"samora": {"relative_gap": 0.0, "within_10_percent": True}}
    plan["samora(router=mlp,r=8)"] = {"relative_gap": 1.332, "within_10_percent": False}
    comparison = {"match_budget": True, "budget": "samora", "parameters": plan}
    assert _budget_phrase(comparison) == (
        "with parameter budgets matched to samora (except samora(router=mlp,r=8), +133%: outside 10%)"
    )
    del plan["samora(router=mlp,r=8)"]
    assert _budget_phrase(comparison) == "with parameter budgets matched to samora"
