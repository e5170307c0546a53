"""The shared-prompt loglik path (the default) against the plain reference path.

Random multiple-choice requests (2-4 choices per prompt, 1-6 token choices, some single prompts),
scored with ``share_prompts=True`` and ``False``: on a tiny random Llama with and without
``logits_to_keep``, under left-truncation, on a SAMoRA-adapted tiny model routed by mixed
per-request task ids (its router is token-level, so every choice token must see its own task), and
on the real SmolLM2 with both commonsense templates.
"""

import random

import pytest
import torch

import samora
from samora.data import load_examples
from samora.evaluation import loglik_scores
from samora.models.smollm2 import load_smollm2
from tests.helpers import data_tiny_model

WORDS = (
    "the a cat dog sky blue answer question yes no red green tree house run jump over under carbon oxygen 1 2 3 ! ?"
).split()


HEADER = "Below is an instruction that describes a task.\n\n### Instruction:\n"


def random_requests(seed: int, examples: int = 7, longest_prompt: int = 30, header: str = ""):
    """Multiple-choice requests: each prompt repeated for its 2-4 choices, plus two lone ones.
    Every other example's choices start with the same words (as ``the correct answer is
    answer1``..``answer4`` do), some of them only those words (a choice that is a prefix of
    another). Every prompt starts with ``header``."""
    rng = random.Random(seed)
    contexts, continuations = [], []
    for example in range(examples):
        context = header + " ".join(rng.choices(WORDS, k=rng.randint(1, longest_prompt))) + ":"
        common = rng.choices(WORDS, k=rng.randint(1, 4)) if example % 2 else []
        for _ in range(rng.randint(2, 4)):
            contexts.append(context)
            words = common + rng.choices(WORDS, k=rng.randint(0 if common else 1, 6))
            continuations.append(" " + " ".join(words))
    contexts += ["alone here", ""]
    continuations += [" one two", "empty prompt"]
    return contexts, continuations


def assert_same_scores(model, tokenizer, contexts, continuations, *, sizes=None, **options):
    shared = loglik_scores(model, tokenizer, contexts, continuations, progress=False, **options)
    plain = loglik_scores(model, tokenizer, contexts, continuations, progress=False, share_prompts=False, **options)
    assert shared == pytest.approx(plain, abs=1e-4)
    assert all(score < 0 for score in shared)
    start = 0
    for size in sizes or []:  # the same prediction per example
        chosen = slice(start, start + size)
        assert max(range(size), key=shared[chosen].__getitem__) == max(range(size), key=plain[chosen].__getitem__)
        start += size
    return shared


def forward_shapes(model):
    """A list that records the (batch, tokens) shape of every forward of ``model`` from now on."""
    shapes = []
    model.model.embed_tokens.register_forward_hook(lambda module, args, output: shapes.append(tuple(args[0].shape)))
    return shapes


@pytest.mark.parametrize("recording", [False, True])  # with / without logits_to_keep
@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("header", ["", HEADER])  # a header common to all prompts runs once
def test_shared_prompts_match_the_plain_path(smollm2_tokenizer, recording, batch_size, header):
    model = data_tiny_model(smollm2_tokenizer, recording=recording)
    contexts, continuations = random_requests(seed=batch_size, header=header)
    assert_same_scores(model, smollm2_tokenizer, contexts, continuations, batch_size=batch_size)


def test_shared_prompts_truncate_from_the_left_like_the_plain_path(smollm2_tokenizer):
    # a 24-token window: long prompts lose their start, by a different amount per choice length
    model = data_tiny_model(smollm2_tokenizer, max_position_embeddings=24, recording=False)
    contexts, continuations = random_requests(seed=5, longest_prompt=40)
    assert_same_scores(model, smollm2_tokenizer, contexts, continuations, batch_size=4)


def test_each_shared_prompt_runs_once_then_only_the_choice_tokens(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer, recording=False)
    shapes = forward_shapes(model)
    prompt = "Question: Which gas do plants take in?\nAnswer:"
    choices = [" oxygen", " carbon dioxide", " helium and neon", " a gas that plants take in"]
    loglik_scores(model, smollm2_tokenizer, [prompt] * 4, choices, progress=False)
    prompt_tokens = len(smollm2_tokenizer(prompt)["input_ids"])
    lengths = [len(smollm2_tokenizer(c, add_special_tokens=False)["input_ids"]) for c in choices]
    assert lengths[0] == 1 and min(lengths[1:]) > 1
    # one (1, prompt) forward, then the 3 choices of > 1 token without their last token
    assert shapes == [(1, prompt_tokens), (3, max(lengths) - 1)]


def test_choices_that_differ_in_their_last_token_need_one_forward(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer, recording=False)
    shapes = forward_shapes(model)
    prompt = "Answer format: answer1/answer2/answer3\n\n### Response:\n"
    choices = [f"the correct answer is answer{k}" for k in (1, 2, 3)]
    [ids] = smollm2_tokenizer([prompt + choices[0]])["input_ids"]
    loglik_scores(model, smollm2_tokenizer, [prompt] * 3, choices, progress=False)
    assert shapes == [(1, len(ids) - 1)]  # the stem: all but the digit, which differs


def test_a_header_common_to_the_batch_runs_once(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer, recording=False)
    shapes = forward_shapes(model)
    questions = ["Which gas do plants take in?", "What is ice?"]
    contexts = [HEADER + question for question in questions for _ in range(2)]
    loglik_scores(model, smollm2_tokenizer, contexts, [" air", " water"] * 2, progress=False)
    header = len(smollm2_tokenizer(HEADER)["input_ids"])
    widest = max(len(smollm2_tokenizer(HEADER + q)["input_ids"]) for q in questions)
    assert shapes[0] == (1, header) and shapes[1] == (2, widest - header)


def test_task_ids_follow_every_expanded_row(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer)
    contexts = ["Q: one?\nA:"] * 3 + ["Q: one?\nA:"] * 2 + ["Q: two?\nA:"] * 2
    continuations = [" yes it is", " no it is not", " maybe so", " yes it is", " no", " red or blue", " green"]
    task_ids = [0, 0, 0, 2, 2, 1, 1]  # the same prompt under two tasks is two groups
    loglik_scores(model, smollm2_tokenizer, contexts, continuations, task_id=task_ids, progress=False)
    # prompts (longest first, ties in input order): [0, 2, 1]; then the rows of choices > 1 token
    assert model.recorded == [[0, 2, 1], [0, 0, 0, 2, 1]]


def test_a_task_id_list_of_the_wrong_length_is_a_clear_error(smollm2_tokenizer):
    model = data_tiny_model(smollm2_tokenizer)
    with pytest.raises(ValueError, match="task_id has 2 entries for 3 requests"):
        loglik_scores(model, smollm2_tokenizer, ["a", "a", "b"], [" x", " y", " z"], task_id=[0, 1], progress=False)


def test_shared_prompts_match_on_a_samora_model_with_mixed_task_ids(smollm2_tokenizer):
    config = samora.SAMoRAConfig(
        r=4, num_experts=3, tasks=["alpha", "beta", "gamma"], target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    model = samora.get_model(data_tiny_model(smollm2_tokenizer, recording=False), config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # move B (zero at init) and the rest off their init
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    contexts, continuations = random_requests(seed=11)
    rng = random.Random(0)
    task_by_prompt = {context: rng.choice([0, 1, 2, -1]) for context in contexts}
    task_ids = [task_by_prompt[context] for context in contexts]
    routed = assert_same_scores(model, smollm2_tokenizer, contexts, continuations, batch_size=3, task_id=task_ids)
    headed = random_requests(seed=12, header=HEADER)  # one task: the header runs once, routed
    assert_same_scores(model, smollm2_tokenizer, *headed, batch_size=3, task_id=1)
    other = loglik_scores(
        model, smollm2_tokenizer, contexts, continuations, progress=False, task_id=[(t + 1) % 3 for t in task_ids]
    )
    assert max(abs(a - b) for a, b in zip(routed, other)) > 1e-3  # the task ids matter


@pytest.mark.real_model
@pytest.mark.parametrize("template", ["commonsense_170k", "harness"])
def test_shared_prompts_match_on_smollm2(template):
    model, tokenizer = load_smollm2()
    examples = load_examples("arc_easy", "eval", limit=4, template=template)
    contexts = [p for prompts in examples["choice_prompts"] for p in prompts]
    continuations = [c for choices in examples["choices"] for c in choices]
    assert_same_scores(
        model.eval(),
        tokenizer,
        contexts,
        continuations,
        batch_size=4,
        sizes=[len(choices) for choices in examples["choices"]],
    )


def test_the_reference_path_is_still_the_plain_one(smollm2_tokenizer):
    # share_prompts=False: one full forward per request, batch_size requests at a time
    model = data_tiny_model(smollm2_tokenizer)
    loglik_scores(
        model,
        smollm2_tokenizer,
        ["p"] * 5,
        [" a", " b", " c", " d", " e"],
        batch_size=2,
        share_prompts=False,
        task_id=4,
        progress=False,
    )
    assert model.recorded == [[4, 4], [4, 4], [4]]
