"""ChatFormat: prompts, training texts and stop markers inside the tokenizer's chat template."""

import copy

import pytest

from samora.data.chat import ChatFormat, ChatTemplateError

SMOLLM2_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def test_the_prompt_is_the_user_turn_and_the_assistant_header(smollm2_tokenizer):
    chat = ChatFormat(smollm2_tokenizer)
    assert chat.prompt("Is the sky blue?") == (
        SMOLLM2_SYSTEM + "<|im_start|>user\nIs the sky blue?<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = ChatFormat(smollm2_tokenizer, system="Answer yes or no.").prompt("Is it?")
    assert with_system.startswith("<|im_start|>system\nAnswer yes or no.<|im_end|>\n<|im_start|>user\nIs it?")
    # an empty system instruction is none at all (lm-eval's maybe_delimit)
    assert ChatFormat(smollm2_tokenizer, system="").prompt("Is it?") == ChatFormat(smollm2_tokenizer).prompt("Is it?")


def test_a_template_that_refuses_a_system_turn_is_rendered_without_it(smollm2_tokenizer):
    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    assert ChatFormat(tokenizer, system="Be brief.").prompt("Hi") == "[user] Hi\n[assistant] "


def test_training_texts_put_the_answer_and_its_end_of_turn_in_the_response(smollm2_tokenizer):
    chat = ChatFormat(smollm2_tokenizer)
    prompt_text, response_text = chat.training_texts("Is the sky blue?", "Yes.")
    assert prompt_text == chat.prompt("Is the sky blue?")
    assert response_text == "Yes.<|im_end|>\n"


def test_generation_stops_at_the_end_of_turn_marker(smollm2_tokenizer):
    chat = ChatFormat(smollm2_tokenizer)
    assert chat.stop_strings() == ["<|im_end|>"]
    assert chat.stop_token_ids() == [smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_a_choice_follows_the_assistant_header_without_the_delimiter(smollm2_tokenizer):
    chat = ChatFormat(smollm2_tokenizer)
    context, continuation = chat.loglik_request("Is the sky blue?", " yes", " ")
    assert context + continuation == chat.prompt("Is the sky blue?") + "yes"
    assert context.endswith("<|im_start|>assistant") and continuation == "\nyes"


class _AddsBos:
    """A tokenizer stand-in whose encoding starts with BOS and whose template writes the BOS text."""

    bos_token, bos_token_id, chat_template = "<s>", 1, "{{ messages }}"

    def __call__(self, text):
        return {"input_ids": [1]}


def test_the_templates_bos_text_is_dropped_when_the_tokenizer_adds_bos_itself(smollm2_tokenizer):
    assert ChatFormat(_AddsBos()).without_added_bos("<s>[user] hi") == "[user] hi"
    # SmolLM2's BOS text is <|im_start|>, but its tokenizer adds no BOS: the text is kept
    assert ChatFormat(smollm2_tokenizer).without_added_bos("<|im_start|>user") == "<|im_start|>user"


def test_a_tokenizer_without_a_chat_template_is_refused(smollm2_tokenizer):
    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(ChatTemplateError, match="has no chat template; use a chat .*set tokenizer.chat_template"):
        ChatFormat(tokenizer)
