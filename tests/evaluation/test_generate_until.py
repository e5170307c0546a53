"""generate_until tasks: lm-eval's generation semantics, filters and text metrics, per-example records."""

import numpy as np
import pytest

from samora.data.tasks import Task
from samora.evaluation import write_samples
from samora.evaluation.generate_until import GenerationSettings, cut_at_stops, generate_until, generation_settings
from samora.evaluation.results_files import read_samples
from samora.evaluation.suite import _primary_values
from samora.evaluation.task_results import EvaluationOptions, score_examples
from samora.evaluation.text_scoring import example_score
from tests.helpers import data_tiny_model

PROMPTS = ["Q: capital of France?\nA:", "Q: 2 + 2?\nA:", "Q: colour of the sky on a clear day?\nA:", "Q: x\nA:"]


def own_task(**fields) -> Task:
    """A hand-built generate_until task, as the own-task loader will declare one."""
    return Task(
        name="capitals",
        benchmark="own",
        aliases=(),
        splits=("validation",),
        eval_split="validation",
        metrics=("exact_match",),
        hub=("", None),
        output_type="generate_until",
        **{"generation_kwargs": {"until": ["\n\n"], "max_gen_toks": 12}, **fields},
    )


def rendered(targets):
    n = len(targets)
    return {"id": [str(i) for i in range(n)], "prompt": PROMPTS[:n], "target": targets, "gold": [-1] * n}


def test_generation_settings_follow_lm_eval_and_refuse_what_samora_does_not_do():
    assert generation_settings({"until": "\n", "max_gen_toks": 5}) == GenerationSettings(("\n",), 5)
    assert generation_settings({"until": ["a", "b"], "do_sample": False, "temperature": 0.0}).max_gen_toks == 256
    assert generation_settings(None) == GenerationSettings((), 256)
    assert generation_settings({"max_new_tokens": 7}).max_gen_toks == 7
    with pytest.raises(ValueError, match="capitals: generation_kwargs asks for sampling"):
        generation_settings({"do_sample": True, "temperature": 0.7}, "capitals")
    with pytest.raises(ValueError, match=r"key\(s\) \['top_p'\] are not supported"):
        generation_settings({"top_p": 0.9})
    with pytest.raises(ValueError, match="max_gen_toks must be a positive integer"):
        generation_settings({"max_gen_toks": 0})


def test_stop_strings_cut_in_turn_without_stripping():
    assert cut_at_stops(" Paris\n\nQ: next", ["\n\n", "Q:"]) == " Paris"
    assert cut_at_stops(" Paris.</s>", ["", "</s>"]) == " Paris."


def test_generation_stops_at_a_stop_string_and_cuts_exactly_there(smollm2_tokenizer, data_model):
    free = generate_until(data_model, smollm2_tokenizer, PROMPTS, GenerationSettings((), 10), progress=False)
    assert all(len(text) >= 4 for text in free)
    stops = [text[2:4] for text in free]  # a stop string inside each free generation
    for prompt, text, stop in zip(PROMPTS, free, stops):
        cut = generate_until(data_model, smollm2_tokenizer, [prompt], GenerationSettings((stop,), 10), progress=False)
        assert cut == [text.split(stop)[0]]


def test_a_stop_token_ends_its_row(smollm2_tokenizer, data_model):
    settings = GenerationSettings((), 8)
    free = generate_until(data_model, smollm2_tokenizer, PROMPTS[:1], settings, progress=False)[0]
    tokens = smollm2_tokenizer(free, add_special_tokens=False)["input_ids"]
    stopped = generate_until(
        data_model, smollm2_tokenizer, PROMPTS[:1], settings, stop_token_ids=[tokens[2]], progress=False
    )[0]
    assert stopped == smollm2_tokenizer.decode(tokens[:3]) and free.startswith(stopped) and stopped != free


def test_batches_and_routing_do_not_change_the_texts(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer, routed_tasks=["capitals"])
    settings = GenerationSettings(("\n",), 8)
    one_by_one = [generate_until(model, smollm2_tokenizer, [p], settings, progress=False)[0] for p in PROMPTS]
    model.recorded.clear()
    batched = generate_until(model, smollm2_tokenizer, PROMPTS, settings, batch_size=3, task_id=0, progress=False)
    assert batched == one_by_one
    assert model.recorded and all(ids == [0] * len(ids) for ids in model.recorded)


def test_an_own_generate_until_task_is_scored_per_example_with_intervals(smollm2_tokenizer, data_model, tmp_path):
    task = own_task(
        metric_list=({"metric": "exact_match", "ignore_case": True}, {"metric": "f1"}),
        filter_list=(
            {"name": "whole", "filter": [{"function": "take_first"}]},
            {
                "name": "first-word",
                "filter": [{"function": "regex", "regex_pattern": r"(\S+)"}, {"function": "take_first"}],
            },
        ),
    )
    settings = generation_settings(task.generation_kwargs)
    texts = generate_until(data_model, smollm2_tokenizer, PROMPTS, settings, progress=False)
    # golds: the model's own text (upper-cased) for the first two, something else for the others
    targets = [texts[0].upper(), texts[1].upper(), "blue", "nothing"]
    options = EvaluationOptions(bootstrap_samples=50, progress=False, batch_size=2)
    fields = score_examples(data_model, smollm2_tokenizer, task, rendered(targets), None, options, None)

    assert fields["primary_metric"] == "exact_match,whole"
    assert list(fields["metrics"]) == ["exact_match,whole", "f1,whole", "exact_match,first-word", "f1,first-word"]
    assert fields["metrics"]["exact_match,whole"] == 0.5
    assert set(fields["statistics"]) == set(fields["metrics"])
    low, high = fields["statistics"]["exact_match,whole"]["ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    first = fields["samples"][0]
    assert first["response"] == texts[0] and first["gold"] == targets[0] and first["prompt"] == PROMPTS[0]
    assert first["filtered"]["first-word"] == texts[0].split()[0]
    assert first["metrics"]["exact_match,whole"] == 1.0 and first["correct"] is True
    assert [s["metrics"]["exact_match,whole"] for s in fields["samples"]] == [1.0, 1.0, 0.0, 0.0]

    # the benchmark average, samples.jsonl and compare's per-example scores read the same numbers
    metric, golds, preds = _primary_values(fields)
    assert metric(np.asarray(golds), np.asarray(preds)) == 0.5
    records = read_samples(write_samples({"tasks": {"capitals": dict(fields)}}, tmp_path / "samples.jsonl"))
    assert [r["correct"] for r in records] == [True, True, False, False]
    assert [example_score(r, "exact_match,whole") for r in records] == [1.0, 1.0, 0.0, 0.0]
    assert [example_score(r, "acc") for r in records] == [1.0, 1.0, 0.0, 0.0]  # no acc: the primary metric
    assert example_score(records[2], "f1,whole") == fields["samples"][2]["metrics"]["f1,whole"]


def test_without_a_filter_list_metrics_keep_their_names(smollm2_tokenizer, data_model):
    task = own_task(metric_list=({"metric": "exact_match"}, {"metric": "rouge_l"}))
    options = EvaluationOptions(bootstrap_samples=20, progress=False)
    fields = score_examples(data_model, smollm2_tokenizer, task, rendered(["a", "b"]), None, options, None)
    assert fields["primary_metric"] == "exact_match" and list(fields["metrics"]) == ["exact_match", "rouge_l"]
    assert fields["samples"][0]["filtered"] == {"none": fields["samples"][0]["response"]}


def test_an_unknown_metric_is_refused_before_generating(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer)
    task = own_task(metric_list=({"metric": "bleu"},))
    with pytest.raises(ValueError, match="Unknown text metric 'bleu'"):
        score_examples(model, smollm2_tokenizer, task, rendered(["a"]), None, EvaluationOptions(), None)
    assert model.recorded == []
