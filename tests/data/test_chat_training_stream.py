"""``data.template: chat``: the training stream writes each example inside the tokenizer's chat template
and trains on the assistant turn only; evaluation is told to score inside the same template."""

from __future__ import annotations

import pytest

from samora.data import build_training_stream
from samora.data.chat import ChatFormat
from samora.data.task_set import resolve_task_set
from samora.run.run_config import ConfigError, config_from_dict, load_run_config
from samora.run.run_tasks import chat_options
from tests.helpers import ROOT


def test_the_loss_covers_only_the_assistant_turn(smollm2_tokenizer):
    chat = ChatFormat(smollm2_tokenizer, "Answer briefly.")
    tasks = resolve_task_set([str(ROOT / "examples" / "own-tasks" / "copa.yaml"), "boolq"])
    stream = build_training_stream(smollm2_tokenizer, tasks, per_task_cap=3, max_length=256, chat=chat)
    for row in stream:
        text = smollm2_tokenizer.decode(row["input_ids"])
        learned = smollm2_tokenizer.decode([t for t in row["labels"] if t >= 0])
        assert text.count("<|im_start|>system\nAnswer briefly.") == 1 and "<|im_start|>assistant\n" in text
        assert "<|im_start|>" not in learned and not learned.startswith(" ")
        assert learned.count("<|im_end|>") == 1  # the turn's own end, no eos appended after it


def test_chat_sets_the_evaluation_options_and_a_system_prompt_needs_it():
    config = config_from_dict({"data": {"tasks": "boolq", "template": "chat", "system_prompt": "Be brief."}})
    assert chat_options(config) == {"chat_template": True, "system_prompt": "Be brief."}
    assert chat_options(config_from_dict({"data": {"tasks": "boolq"}})) == {}
    with pytest.raises(ConfigError, match="data.system_prompt must be null unless data.template is chat"):
        load_run_config(overrides=["data.tasks=[boolq]", "data.system_prompt=Be brief."])
