"""Chat templates: examples inside the tokenizer's own ``apply_chat_template``, as lm-evaluation-harness
0.4's ``--apply_chat_template`` renders them.

lm-eval (``ConfigurableTask.fewshot_context`` with zero shots, then ``HFLM.apply_chat_template``)
turns a rendered prompt ``q`` (``doc_to_text``) into the messages ``[{"role": "system", "content":
system}]`` (only when a non-empty system instruction is given) ``+ [{"role": "user", "content": q}]`` and
renders them with ``tokenizer.apply_chat_template(messages, tokenize=False,
add_generation_prompt=True)``; a template that refuses a system message is rendered again without
it. The scored or generated text is then the assistant turn:

- ``multiple_choice``: each choice is scored as the continuation of the rendered prompt *without*
  the task's ``target_delimiter`` (the template's assistant header separates them), and, as for every
  request, the prompt's trailing whitespace (the newline after ``assistant``) moves to the start of
  the continuation (:meth:`ChatFormat.loglik_request`).
- ``generate_until``: generation starts after the assistant header and also stops at the
  template's end-of-turn marker (:meth:`ChatFormat.stop_strings`, :meth:`ChatFormat.stop_token_ids`).

Training formats the same conversation with the answer as the assistant turn
(:meth:`ChatFormat.training_texts`): the loss covers only the assistant's text and its end-of-turn
marker.
"""

from __future__ import annotations

from typing import Any

import jinja2

_ANSWER_MARK = "\x00samora-answer\x00"  # stands for the answer when the template's end of turn is read


class ChatTemplateError(ValueError):
    """The tokenizer has no chat template, or its template renders the conversation unexpectedly."""


class ChatFormat:
    """A tokenizer's chat template applied to samora's prompts and responses (module docstring)."""

    def __init__(self, tokenizer: Any, system: str | None = None) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError(
                f"{type(tokenizer).__name__} {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
                "use a chat (instruct) model's tokenizer, set tokenizer.chat_template, or drop the chat template "
                "(data.template / chat_template=False)"
            )
        self.tokenizer, self.system = tokenizer, system

    def prompt(self, text: str) -> str:
        """The user turn ``text`` followed by the assistant header (the generation prompt)."""
        return self._render([{"role": "user", "content": text}], add_generation_prompt=True)

    def training_texts(self, prompt: str, response: str) -> tuple[str, str]:
        """``(prompt_text, response_text)``: the rendered conversation split where the assistant's
        answer starts, so that ``response_text`` is the answer with the end-of-turn marker."""
        prompt_text = self.prompt(prompt)
        whole = self._render(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
            add_generation_prompt=False,
        )
        if not whole.startswith(prompt_text):
            raise ChatTemplateError(
                "the chat template renders a conversation with an answer differently from the prompt "
                f"alone, so the answer cannot be separated for training: {prompt_text!r} is not a prefix "
                f"of {whole!r}"
            )
        return prompt_text, whole[len(prompt_text) :]

    def stop_strings(self) -> list[str]:
        """The end-of-turn marker the template puts after an assistant answer (``<|im_end|>``), or
        the tokenizer's EOS text when the template adds nothing."""
        _, after = self.training_texts("?", _ANSWER_MARK)
        marker = after.split(_ANSWER_MARK, 1)[-1].strip()
        eos = self.tokenizer.eos_token
        return [marker] if marker else ([eos] if eos else [])

    def stop_token_ids(self) -> list[int]:
        """The token ids of the end-of-turn markers that are single tokens of the vocabulary."""
        vocabulary = self.tokenizer.get_vocab()
        return [vocabulary[marker] for marker in self.stop_strings() if marker in vocabulary]

    def loglik_request(self, context: str, continuation: str, target_delimiter: str) -> tuple[str, str]:
        """One multiple-choice request inside the template: the rendered ``context`` and the choice
        without ``target_delimiter``, the rendered text's trailing whitespace moved to the
        continuation (lm-eval's ``_encode_pair``), and the template's leading BOS text removed when
        the tokenizer adds the BOS token itself (lm-eval does not add a second one)."""
        rendered = self.without_added_bos(self.prompt(context))
        kept = rendered.rstrip()
        return kept, rendered[len(kept) :] + continuation.removeprefix(target_delimiter)

    def without_added_bos(self, text: str) -> str:
        """``text`` without its leading BOS text when tokenising adds the BOS token anyway."""
        bos = self.tokenizer.bos_token
        adds_bos = self.tokenizer.bos_token_id in self.tokenizer("")["input_ids"]
        return text[len(bos) :] if bos and adds_bos and text.startswith(bos) else text

    def _render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
        system = [{"role": "system", "content": self.system}] if self.system else []
        try:
            return self._apply(system + messages, add_generation_prompt)
        except jinja2.exceptions.TemplateError:
            if not system:
                raise
            return self._apply(messages, add_generation_prompt)  # lm-eval: the template refuses a system turn

    def _apply(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, continue_final_message=False
        )
