"""Log-likelihood scoring against a straightforward reference, generation, answer extraction."""

import pytest
import torch

from samora.evaluation import UNPARSED, extract_answer, generate_responses, loglik_scores
from tests.helpers import data_tiny_model

CONTEXTS = [
    "Question: Which gas do plants take in?\nAnswer:",
    "The sky is",
    "Below is an instruction.\n\n### Response:\n",
    "Q: 2+2?\nA:",
    "Answer: ",
]
CONTINUATIONS = [" carbon dioxide", " blue and very bright today", "the correct answer is answer2", " 4", "yes"]


def reference_loglik(model, tokenizer, context, continuation):
    """One unbatched forward over context + continuation; sum the continuation's log-probs."""
    context_ids = tokenizer(context.rstrip(" "))["input_ids"]
    continuation_ids = tokenizer(context[len(context.rstrip(" ")) :] + continuation, add_special_tokens=False)[
        "input_ids"
    ]
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(logprobs[position - 1, ids[0, position]]) for position in range(len(context_ids), ids.shape[1]))


@pytest.mark.parametrize("recording", [True, False])  # without / with logits_to_keep
def test_batched_loglik_matches_the_reference(smollm2_tokenizer, recording):
    model = data_tiny_model(smollm2_tokenizer, recording=recording)
    scores = loglik_scores(model, smollm2_tokenizer, CONTEXTS, CONTINUATIONS, batch_size=3, progress=False)
    expected = [reference_loglik(model, smollm2_tokenizer, c, k) for c, k in zip(CONTEXTS, CONTINUATIONS)]
    assert scores == pytest.approx(expected, abs=1e-4)
    assert all(score < 0 for score in scores)


def test_loglik_truncates_long_contexts_from_the_left(smollm2_tokenizer, caplog):
    model = data_tiny_model(smollm2_tokenizer, max_position_embeddings=16, recording=False)
    context = " ".join(f"w{i}" for i in range(40)) + " end:"
    with caplog.at_level("WARNING", logger="samora.evaluation.loglik"):
        [score, _] = loglik_scores(model, smollm2_tokenizer, [context, "short:"], [" yes", " no"], progress=False)
    assert "loglik: 1 of 2 scored sequences exceed the model's context window (16 tokens)" in caplog.text
    ids = (smollm2_tokenizer(context)["input_ids"] + smollm2_tokenizer(" yes", add_special_tokens=False)["input_ids"])[
        -17:
    ]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids[:-1]])).logits[0], -1)
    assert score == pytest.approx(float(logprobs[-1, ids[-1]]), abs=1e-4)


def test_loglik_routes_task_ids_only_when_asked(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer)
    loglik_scores(model, smollm2_tokenizer, CONTEXTS, CONTINUATIONS, batch_size=2, progress=False)
    assert model.recorded == [None, None, None]
    model.recorded.clear()
    loglik_scores(model, smollm2_tokenizer, CONTEXTS, CONTINUATIONS, batch_size=2, task_id=3, progress=False)
    assert model.recorded == [[3, 3], [3, 3], [3]]


def test_batched_generation_matches_one_by_one(data_model, smollm2_tokenizer):
    prompts = CONTEXTS[:3]
    batched = generate_responses(
        data_model, smollm2_tokenizer, prompts, batch_size=3, max_new_tokens=4, progress=False
    )
    single = [
        generate_responses(data_model, smollm2_tokenizer, [p], batch_size=1, max_new_tokens=4, progress=False)[0]
        for p in prompts
    ]
    assert batched == single
    assert all(isinstance(text, str) for text in batched)


def test_generation_passes_task_ids_expanded_for_beams(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer)
    generate_responses(
        model, smollm2_tokenizer, CONTEXTS[:2], batch_size=2, num_beams=3, max_new_tokens=3, task_id=5, progress=False
    )
    assert model.recorded and all(ids == [5] * 6 for ids in model.recorded)  # 2 prompts x 3 beams
    model.recorded.clear()
    generate_responses(model, smollm2_tokenizer, CONTEXTS[:2], max_new_tokens=2, progress=False)
    assert model.recorded and all(ids is None for ids in model.recorded)


@pytest.mark.parametrize(
    "text, labels, options, expected",
    [
        ("the correct answer is answer3", ["answer1", "answer2", "answer3"], {}, 2),
        ("answer2, or maybe answer1", ["answer1", "answer2", "answer3"], {}, 1),
        ("the correct answer is false", ["true", "false"], {}, 1),
        ("it is untrue", ["true", "false"], {}, 0),  # LLM-Adapters' regex has no word boundaries
        ("I cannot tell", ["solution1", "solution2"], {}, UNPARSED),
        ("Answer3", ["answer1", "answer2", "answer3"], {}, UNPARSED),  # case-sensitive, as theirs
        ("the answer is 3", ["answer1", "answer2", "answer3"], {"lenient": True}, 2),
        ("the answer is 7", ["answer1", "answer2", "answer3"], {"lenient": True}, UNPARSED),
        ("the answer is 2", ["answer1", "answer2"], {}, UNPARSED),  # strict ignores digits
        ("It is 2", ["true", "false"], {"lenient": True}, UNPARSED),  # only numbered labels
        (" Yes, it does.", ["yes", "no"], {"ignore_case": True, "whole_words": True}, 0),
        ("not really", ["yes", "no"], {"ignore_case": True, "whole_words": True}, UNPARSED),
        ("No.", ["yes", "no"], {"ignore_case": True, "whole_words": True}, 1),
        ("maybe yes", ["yes", "maybe", "no"], {"ignore_case": True, "whole_words": True}, 1),
    ],
)
def test_extract_answer(text, labels, options, expected):
    assert extract_answer(text, labels, **options) == expected


@pytest.mark.parametrize("share_prompts", [True, False])
def test_loglik_refuses_non_finite_scores(smollm2_tokenizer, share_prompts):
    """A diverged model's NaN scores must not become argmax predictions (first choice wins)."""
    from samora.evaluation.metrics import NonFiniteScores

    model = data_tiny_model(smollm2_tokenizer, recording=False)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteScores, match="NaN or infinite"):
        loglik_scores(
            model,
            smollm2_tokenizer,
            CONTEXTS,
            CONTINUATIONS,
            batch_size=3,
            share_prompts=share_prompts,
            progress=False,
        )


def test_generation_warns_when_prompts_are_cut_to_the_context_window(smollm2_tokenizer, caplog):
    model = data_tiny_model(smollm2_tokenizer, max_position_embeddings=16, recording=False)
    long = " ".join(f"w{i}" for i in range(40)) + " end:"
    with caplog.at_level("WARNING", logger="samora.evaluation.generation"):
        generate_responses(model, smollm2_tokenizer, [long, "Q:"], max_new_tokens=2, progress=False)
    assert "generate: 1 of 2 prompts exceed the model's context window less max_new_tokens (14 tokens)" in caplog.text
