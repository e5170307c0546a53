"""The routing study (issue #27 item 4) end to end at a tiny size: benchmarks/study_routing.py trains the
preset's grid on the tiny random model, routes MMLU subjects as unseen tasks in every cell, and writes the
Fig. 5 / Fig. 3 summary; run in two parts, the second call resumes without redoing finished work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from samora.run.run_config import load_run_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "study_routing.py"
TINY_SIZES = (
    "train.max_steps=2",  # the first step is warm-up at lr 0: two leave non-zero experts for the PCA
    "train.per_device_train_batch_size=2",
    "train.logging_steps=1",
    "data.per_task_cap=4",
    "eval.limit=2",
    "eval.batch_size=4",
)


def test_presets_compare_the_semantic_and_the_mlp_router_with_8_experts_on_the_commonsense_stream():
    cpu, gpu, commonsense = (
        load_run_config(preset=p) for p in ("study-routing-cpu", "study-routing-gpu", "study-commonsense-cpu")
    )
    assert cpu.compare.methods == ["samora", "samora(router=mlp)"] and cpu.compare.seeds == [41, 42]
    assert cpu.adapter == {"method": "samora", "r": 8, "num_experts": 8}
    assert (cpu.data, cpu.train, cpu.eval) == (commonsense.data, commonsense.train, commonsense.eval)
    assert gpu.compare == cpu.compare and gpu.adapter == cpu.adapter and gpu.data == cpu.data
    assert gpu.model.dtype == "bfloat16" and cpu.model.dtype == "float32"


def run_study(output: Path, model_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--output", str(output), "--per-subject", "3", "--bootstrap-samples", "50"]
    environment = os.environ | {"PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [*command, *extra, f"model.name={model_dir}", *TINY_SIZES],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=ROOT,
        check=False,
    )


def test_the_study_runs_end_to_end_in_parts_and_resumes(tiny_model_dir, tmp_path):
    out = tmp_path / "results"
    first = run_study(out, tiny_model_dir, "--max-cells", "3")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    analysed = sorted(out.glob("cells/*/unseen/unseen.json"))
    assert len(analysed) == 3 and not (out / "routing.json").exists()
    assert "3 of 4 cells analysed; rerun the same command" in first.stderr
    stamps = {path: path.stat().st_mtime_ns for path in analysed}

    second = run_study(out, tiny_model_dir)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())  # not analysed again
    assert len(list(out.glob("cells/*/unseen/unseen.json"))) == 4
    for name in ("routing.json", "routing.md", "fig5_expert_share.png", "fig3_expert_pca.png", "comparison.md"):
        assert (out / name).is_file(), name

    summary = json.loads((out / "routing.json").read_text())
    assert list(summary["routers"]) == ["semantic router", "MLP router"]
    for entry in summary["routers"].values():
        assert len(entry["cells"]) == 2 and entry["examples"] == 8 * 3
        assert len(entry["expert_share"]) == 8 and all(len(row) == 8 for row in entry["expert_share"].values())
        assert all(abs(sum(row) - 1) < 1e-6 for row in entry["expert_share"].values())
        assert [seed["collapse_per_layer"]["layers"] for seed in entry["per_seed"]] == [8, 8]  # 2 blocks x q/k/v/o
        collapse = entry["collapse"]
        for stat in ("entropy", "top_share", "example_entropy"):
            assert collapse[stat]["low"] <= collapse[stat]["value"] <= collapse[stat]["high"], stat
    assert all(isinstance(p["separation"], float) for p in summary["pca_separation"].values())  # trained experts
    points = json.loads((out / "cells" / "samora-seed41" / "unseen" / "expert_pca_points.json").read_text())
    (layer,) = points.values()
    assert len({tuple(point) for point in layer["points"]}) > 100  # small outputs keep their resolution
    cell = json.loads((out / "cells" / "samora-router-mlp-seed41" / "unseen" / "unseen.json").read_text())
    assert cell["subjects"][0] == "mmlu_abstract_algebra" and len(cell["labels"]) == 24
    assert cell["labels"][:8] == cell["subjects"]  # subjects take turns, so the PCA's first tokens span them
    assert [p["layer"].endswith("1.self_attn.o_proj") for p in summary["pca_separation"].values()] == [True, True]
    report = (out / "routing.md").read_text()
    assert "| MLP router | 24 |" in report and "| MLP router | samora-router-mlp-seed42 |" in report
