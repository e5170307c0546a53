"""acc and acc_norm against goldens computed by lm-evaluation-harness 0.4.13 itself.

goldens/lm_eval_smollm2.json was written by benchmarks/lm_eval_goldens.py (lm-eval is not a
dependency of samora or its tests): lm-eval's HF backend on SmolLM2-135M-Instruct (float32, CPU)
ran on samora's ``harness`` rendering of the first bundled BoolQ and ARC-Easy evaluation examples,
exported as local-JSONL tasks, with ``--log_samples``. Per example it holds samora's prompt and
choices, the gold index, lm-eval's loglik per choice and lm-eval's 0/1 ``acc`` and ``acc_norm``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from samora.evaluation import choice_length, evaluate
from samora.models.smollm2 import load_smollm2

GOLDENS = json.loads((Path(__file__).with_name("goldens") / "lm_eval_smollm2.json").read_text(encoding="utf-8"))
TASKS = GOLDENS["tasks"]


def correct(scores, choices, gold, length):
    """(acc, acc_norm) hits of one example: argmax of scores, and of scores / length(choice)."""
    scores = np.asarray(scores, dtype=float)
    lengths = np.asarray([length(choice) for choice in choices], dtype=float)
    return int(np.argmax(scores) == gold), int(np.argmax(scores / lengths) == gold)


def test_goldens_hold_lm_eval_records():
    assert GOLDENS["lm_eval"] == "0.4.13"
    assert {len(task["examples"]) for task in TASKS.values()} == {40, 20}
    for task in TASKS.values():
        for example in task["examples"]:
            assert len(example["loglik"]) == len(example["choices"]) >= 2
            assert all(choice.startswith(" ") for choice in example["choices"])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_acc_norm_convention_reproduces_lm_eval_on_its_logliks(task):
    examples = TASKS[task]["examples"]
    for example in examples:
        assert correct(example["loglik"], example["choices"], example["gold"], choice_length) == (
            example["acc"],
            example["acc_norm"],
        ), example["id"]


def test_counting_the_delimiter_would_not_match_lm_eval():
    # the goldens pin the convention: with the leading space counted, some predictions flip
    examples = TASKS["boolq"]["examples"]
    with_space = [correct(e["loglik"], e["choices"], e["gold"], len)[1] for e in examples]
    assert with_space != [e["acc_norm"] for e in examples]


@pytest.mark.real_model
def test_samora_matches_lm_eval_on_smollm2():
    model, tokenizer = load_smollm2()
    for task, golden in TASKS.items():
        results = evaluate(
            model,
            tokenizer,
            task,
            template=golden["template"],
            limit=golden["limit"],
            progress=False,
            log_samples=True,
        )
        entry, expected = results["tasks"][task], golden["examples"]
        assert [s["id"] for s in entry["samples"]] == [e["id"] for e in expected]
        for sample, example in zip(entry["samples"], expected):
            assert sample["scores"] == pytest.approx(example["loglik"], abs=2e-3), example["id"]
            assert (int(sample["pred"] == example["gold"]), int(sample["pred_norm"] == example["gold"])) == (
                example["acc"],
                example["acc_norm"],
            ), example["id"]
        # the runner's metrics, acc_norm included, equal lm-eval's on the same examples
        assert entry["metrics"]["acc"] == pytest.approx(np.mean([e["acc"] for e in expected]))
        assert entry["metrics"]["acc_norm"] == pytest.approx(np.mean([e["acc_norm"] for e in expected]))
