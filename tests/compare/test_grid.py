"""``samora compare``: a 3-method x 2-seed grid on a tiny model, killed mid-grid and resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import samora
from samora.cli import main
from samora.compare import MethodSpec, parse_method_spec
from samora.compare.spec import check_compare_section
from samora.run.run_config import ConfigError, load_run_config
from tests.helpers import subprocess_environment

METHODS = "[lora, samora, 'samora(router=linear)']"
CELLS = [
    "lora-seed1",
    "samora-seed1",
    "samora-router-linear-seed1",
    "lora-seed2",
    "samora-seed2",
    "samora-router-linear-seed2",
]  # seed by seed: every row's first seed before any second


def compare_arguments(model_dir, output):
    return [
        "compare",
        "--preset",
        "demo",
        f"model.name={model_dir}",
        "model.dtype=float32",
        "data.tasks=[boolq, arc_easy]",
        "data.per_task_cap=6",
        "data.max_length=96",
        "train.max_steps=2",
        "train.per_device_train_batch_size=4",
        "train.learning_rate=0.05",
        "train.logging_steps=1",
        "eval.limit=5",
        "eval.batch_size=8",
        f"compare.methods={METHODS}",
        "compare.seeds=[1, 2]",
        "compare.reference=lora",
        "compare.budget=lora",
        "compare.bootstrap_samples=200",
        f"output_dir={output}",
    ]


def run_cli(arguments, **popen):
    environment = subprocess_environment(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "samora.cli", *arguments],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def finished_files(output):
    """mtime of every file of every finished cell (a retrained cell would rewrite them)."""
    return {
        str(path.relative_to(output)): path.stat().st_mtime_ns
        for marker in output.glob("cells/*/done.json")
        for path in marker.parent.rglob("*")
        if path.is_file()
    }


def test_method_specs_parse_into_method_and_overrides():
    spec = parse_method_spec(" samora(router=linear, lambda_orth=0, scaling=false) ")
    assert spec == MethodSpec("samora", {"router": "linear", "lambda_orth": 0, "scaling": False})
    assert spec.label == "samora(router=linear,lambda_orth=0,scaling=false)"
    assert spec.slug == "samora-router-linear-lambda_orth-0-scaling-false"
    assert parse_method_spec("lora") == MethodSpec("lora")
    for text, message in [("qlora", "unknown method"), ("samora(router)", "field=value"), ("sa mora", "not a method")]:
        with pytest.raises(ConfigError, match=message):
            parse_method_spec(text)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["compare.methods=['samora(nosuch=1)']"], "SAMoRAConfig has no field.*nosuch"),
        (["compare.methods=['samora(router=moe)']"], "router must be"),
        (["compare.reference=moelora"], "compare.reference 'moelora' must be one of"),
        (["compare.methods=[lora, lora]"], "lists a method twice"),
        (["compare.seeds=[1, 1]"], "distinct integers"),
        (["compare.metric=f1"], "acc or acc_norm"),
    ],
)
def test_bad_compare_sections_are_refused_before_any_work(overrides, message):
    config = load_run_config(preset="demo", overrides=overrides)  # the compare section is compare/'s to check
    with pytest.raises(ConfigError, match=message):
        check_compare_section(config)


def test_an_empty_grid_points_to_the_methods_key(tmp_path, capsys):
    assert main(["compare", "compare.methods=[]", f"output_dir={tmp_path}"]) == 2
    assert "compare.methods is empty" in capsys.readouterr().err


def test_grid_resumes_after_a_kill_without_retraining_and_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    uninterrupted = run_cli(compare_arguments(tiny_model_dir, whole))
    killed = run_cli(compare_arguments(tiny_model_dir, resumed))
    first_marker = resumed / "cells" / CELLS[0] / "done.json"
    deadline = time.monotonic() + 600
    while not first_marker.is_file() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first_marker.is_file(), killed.communicate()[0][-3000:]
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL and not (resumed / "comparison.json").exists()
    before = finished_files(resumed)
    done = {Path(name).parts[1] for name in before}
    assert {"base", CELLS[0]} <= done and len(done) < len(CELLS) + 1

    one_more = run_cli([*compare_arguments(tiny_model_dir, resumed), "--max-cells", "1"])
    output = one_more.communicate()[0]
    assert one_more.returncode == 0, output[-3000:]
    unfinished = [cell for cell in CELLS if cell not in done]
    assert [cell for cell in CELLS if f"cell {cell}: training" in output] == unfinished[:1]
    partial = json.loads((resumed / "comparison.json").read_text())
    assert partial["pending"] == unfinished[1:] and partial["answer"][1].startswith("PARTIAL: ")
    done.add(unfinished[0])

    rerun = run_cli(compare_arguments(tiny_model_dir, resumed))
    output = rerun.communicate()[0]
    assert rerun.returncode == 0, output[-3000:]
    assert all(f"{cell}: finished earlier, skipped" in output for cell in done)
    trained = [cell for cell in CELLS if f"cell {cell}: training" in output]
    assert trained == [cell for cell in CELLS if cell not in done]  # each unfinished cell trained once
    after = finished_files(resumed)
    assert {name: after[name] for name in before} == before  # finished cells untouched

    assert uninterrupted.wait(timeout=900) == 0, uninterrupted.communicate()[0][-3000:]
    expected = json.loads((whole / "comparison.json").read_text())
    got = json.loads((resumed / "comparison.json").read_text())
    assert got["table"] == expected["table"] and got["paired"] == expected["paired"]
    assert got["answer"] == expected["answer"] and got["pending"] == []
    check_comparison(got, resumed)
    check_changed_config_is_refused(tiny_model_dir, resumed)


def check_comparison(comparison, output):
    assert list(comparison["table"]) == ["lora", "samora", "samora(router=linear)", "base"]
    assert {row: len(cells) for row, cells in comparison["cells"].items()} == {
        "lora": 2,
        "samora": 2,
        "samora(router=linear)": 2,
        "base": 1,
    }
    for _label, plan in comparison["parameters"].items():
        assert plan["budget"] == comparison["parameters"]["lora"]["matched"] and plan["within_10_percent"]
    assert comparison["parameters"]["samora"]["requested"] > comparison["parameters"]["samora"]["matched"]
    for row in comparison["table"].values():
        mean = row["mean"]
        assert mean["ci95"][0] <= mean["value"] <= mean["ci95"][1]
    # the table is the mean correctness of the cells' per-example records
    records = [
        json.loads(line)
        for cell in ("lora-seed1", "lora-seed2")
        for line in (output / "cells" / cell / "samples.jsonl").read_text().splitlines()
    ]
    boolq = [r["pred"] == r["gold"] for r in records if r["task"] == "boolq"]
    assert comparison["table"]["lora"]["tasks"]["boolq"]["value"] == pytest.approx(sum(boolq) / len(boolq))
    assert set(comparison["paired"]["vs_reference"]) == {"samora", "samora(router=linear)"}
    assert set(comparison["paired"]["vs_base"]) == {"lora", "samora", "samora(router=linear)"}
    markdown = (output / "comparison.md").read_text()
    assert markdown.splitlines()[2].startswith("lora ") and "95% CI" in markdown.splitlines()[2]
    assert "samora - lora = " in markdown and "within 10%" in markdown
    assert (output / "comparison.png").stat().st_size > 1000


def check_changed_config_is_refused(model_dir, output):
    from samora.compare import run_compare

    overrides = compare_arguments(model_dir, output)[3:] + ["train.max_steps=3"]
    with pytest.raises(ConfigError, match=r"another configuration \(train.max_steps: 2 -> 3\)"):
        run_compare(load_run_config(preset="demo", overrides=overrides))


def test_the_recorded_grid_config_protects_finished_cells_only(tmp_path):
    from samora.compare.grid import check_grid_config

    first = load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}"])
    changed = load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}", "eval.limit=7"])
    check_grid_config(first, tmp_path)
    check_grid_config(changed, tmp_path)  # nothing finished yet (e.g. a failed first start): replaced
    assert "limit: 7" in (tmp_path / "grid.yaml").read_text()
    (tmp_path / "cells" / "base").mkdir(parents=True)
    (tmp_path / "cells" / "base" / "done.json").write_text("{}")
    more_seeds = load_run_config(
        preset="demo", overrides=[f"output_dir={tmp_path}", "eval.limit=7", "compare.seeds=[41, 42]"]
    )
    check_grid_config(more_seeds, tmp_path)  # a larger grid over the same settings is compatible
    with pytest.raises(ConfigError, match=rf"eval.limit: 7 -> {first.eval.limit}"):
        check_grid_config(first, tmp_path)
    recorded = yaml.safe_load((tmp_path / "grid.yaml").read_text())
    del recorded["compare"]["match_size"]  # written before samora had this field: its default applies
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(recorded))
    check_grid_config(changed, tmp_path)
    recorded["compare"]["match_size"] = "alpha"
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(recorded))
    with pytest.raises(ConfigError, match=r"compare.match_size: 'alpha' -> 'r'"):
        check_grid_config(changed, tmp_path)


def test_keys_only_the_comparison_reads_may_change_on_a_rerun(tmp_path):
    """Resamples, metric, reference and also_against change no cell; a new reference that moves
    the budget it implies (compare.budget unset) would retrain every matched cell and is refused."""
    from samora.compare.grid import check_grid_config

    first = load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}"])  # reference lora, budget samora
    check_grid_config(first, tmp_path)
    (tmp_path / "cells" / "base").mkdir(parents=True)
    (tmp_path / "cells" / "base" / "done.json").write_text("{}")
    analysis = [
        "compare.bootstrap_samples=20000",
        "compare.metric=acc_norm",
        "compare.reference=samora",
        "compare.also_against=[lora]",
    ]
    check_grid_config(load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}", *analysis]), tmp_path)
    implied = load_run_config(preset="demo", overrides=[f"output_dir={tmp_path}", "compare.budget=null"])
    with pytest.raises(ConfigError, match=r"compare.budget: 'samora' -> 'lora' \(compare.budget as resolved"):
        check_grid_config(implied, tmp_path)  # unset, the budget is the reference, lora


def test_a_cell_finished_before_an_adapter_field_existed_is_still_finished(tmp_path):
    """SAMoRA's router_hidden came after the study's cells finished: their recorded adapter lacks it,
    and its default keeps what they ran, so they stay finished; a changed value is another configuration."""
    from samora.compare.grid import MARKER, finished_cell

    adapter = samora.SAMoRAConfig(tasks=["a", "b"]).to_dict()
    identity = {"kind": "adapter", "spec": "samora", "seed": 41, "adapter": adapter}
    recorded = dict(identity, adapter={k: v for k, v in adapter.items() if k != "router_hidden"})
    cell = tmp_path / "samora-seed41"
    cell.mkdir()
    (cell / MARKER).write_text(json.dumps({"identity": recorded}))
    assert finished_cell(cell, identity)
    with pytest.raises(ConfigError, match="finished with another configuration"):
        finished_cell(cell, dict(identity, adapter=dict(adapter, temperature=0.5)))
