"""benchmarks/serve_throughput.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import json

import pytest

import samora
from tests.helpers import ROOT


@pytest.fixture
def serve_throughput(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import serve_throughput

    return serve_throughput


def test_the_benchmark_compares_batching_on_and_off_on_the_same_answers(serve_throughput, adapter_dir, tmp_path):
    options = ["--adapter", str(adapter_dir), "--requests", "6", "--rounds", "2", "--max-tokens", "3"]
    report = serve_throughput.main([*options, "--max-batch-size", "6", "--output", str(tmp_path)])
    assert report["same_answers"] is True
    results = report["results"]
    assert results["one_at_a_time"]["largest_batch"] == 1
    ratio = results["batched"]["requests_per_s"] / results["one_at_a_time"]["requests_per_s"]
    assert report["throughput_ratio"] == pytest.approx(ratio)
    assert json.loads((tmp_path / "serve_throughput.json").read_text())["results"] == results
    assert "Throughput ratio (batched / one at a time)" in (tmp_path / "serve_throughput.md").read_text()


def test_the_default_adapter_is_a_samora_mixture_over_the_asked_tasks(serve_throughput, tiny_model_dir, tmp_path):
    folder = serve_throughput.build_adapter(str(tiny_model_dir), ["boolq", "piqa"], tmp_path / "adapter")
    saved = samora.read_adapter_config(folder)
    assert (saved["method"], saved["tasks"]) == ("samora", ["boolq", "piqa"])


def test_the_requests_cycle_through_the_tasks_and_prompts(serve_throughput):
    args = serve_throughput.argparse.Namespace(requests=8, tasks=4, max_tokens=5)
    bodies = serve_throughput.request_bodies(args)
    assert [body["model"] for body in bodies[:5]] == ["boolq", "piqa", "arc_easy", "hellaswag", "boolq"]
    assert len({body["prompt"] for body in bodies}) == 2
    assert all(body["temperature"] == 0 and body["max_tokens"] == 5 for body in bodies)
