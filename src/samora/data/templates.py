"""Prompt templates, as data: a dict of named :class:`Template` objects, selectable by name.

A template turns a task record (fields listed in :mod:`samora.data.tasks`) into

- ``prompt``: the text the model reads;
- ``choices``: one continuation per answer option; ``loglik`` scores ``choice_prompts[i] +
  choices[i]`` and training uses ``prompt + target`` with ``target = choices[gold]``;
- ``answer_labels``: the strings the ``generate`` protocol looks for in the output (empty when the
  template is scored by log-likelihood only).

Templates:

``commonsense_170k`` (default for commonsense) - the instruction format of LLM-Adapters, DoRA,
MTL-LoRA and SAMoRA, in a clean Alpaca wrapper. For ARC-Challenge the prompt is::

    Below is an instruction that describes a task. Write a response that appropriately completes the request.

    ### Instruction:
    Please choose the correct answer to the question: Which gas do plants take in?

    Answer1: oxygen Answer2: carbon dioxide Answer3: helium Answer4: neon

    Answer format: answer1/answer2/answer3/answer4

    ### Response:

and the target is ``the correct answer is answer2``. Options are answer1..5 (ARC, OBQA, SIQA,
CSQA), solution1..2 (PIQA), ending1..4 (HellaSwag), option1..2 (WinoGrande), true/false (BoolQ).

``llm_adapters`` - the same instructions inside the wrapper exactly as LLM-Adapters' and MTL-LoRA's
evaluation scripts write it (indented by 16 spaces, a space after "request."), to score models
trained with their code the way their papers did.

``harness`` - the zero-shot formats of lm-evaluation-harness, scored by log-likelihood of the answer
text: ``Question: <q>\\nAnswer:`` + `` <option text>`` (ARC, PIQA, and CSQA as OLMES scores it;
the harness scores CSQA's letters), ``<passage>\\nQuestion: <q>?\\nAnswer:`` + `` yes``/`` no``
(BoolQ), ``Q: <context> <q>\\nA:`` (SIQA), the question stem alone (OBQA), ``<activity>: <ctx>``
+ `` <ending>`` (HellaSwag), and WinoGrande's partial scoring: each option fills the blank in its
own prompt and the shared rest of the sentence is scored.

``glue_yes_no`` (default for GLUE) - short yes/no questions ending in "Answer:", e.g. for RTE::

    Sentence 1: <sentence1>
    Sentence 2: <sentence2>
    Question: Does sentence 1 entail sentence 2?
    Answer:

with choices `` yes`` / `` no`` in the order of the GLUE labels (MNLI: yes / maybe / no).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from samora.data.tasks import Task, get_task


@dataclass(frozen=True)
class TaskFormat:
    """How one task is written. ``text`` is a ``str.format`` string over the record fields plus
    ``{options}`` (the rendered option list) and ``{answer_format}`` (the labels joined by "/")."""

    text: str = ""
    option_word: str = ""  # "Answer" -> options "Answer1: ..." and answer labels "answer1", ...
    option_sep: str = " "  # between rendered options
    verbalizers: tuple[str, ...] = ()  # fixed answer words, one per label (BoolQ, GLUE)
    partial: bool = False  # WinoGrande partial scoring (harness): options fill the blank


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    wrapper: str  # contains "{instruction}"
    choice_format: str  # contains "{answer}": how each option is written as a continuation
    answer_with_labels: bool  # True: answers are labels (answer1, true); False: the option text
    tasks: dict[str, TaskFormat] = field(default_factory=dict)
    generative: bool = True  # whether the generate protocol can parse its answers
    ignore_case: bool = False  # answer matching in generated text
    whole_words: bool = False

    def spec(self, task: str) -> dict[str, Any]:
        """JSON-able description of this template for one task (written into results)."""
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.tasks[task]).items() if v}
        return {"name": self.name, "wrapper": self.wrapper, "choice_format": self.choice_format, **fields}


ALPACA_WRAPPER = (
    "Below is an instruction that describes a task. Write a response that "
    "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
    "### Response:\n"
)
_INDENT = " " * 16
LLM_ADAPTERS_WRAPPER = (
    "Below is an instruction that describes a task. Write a response that "
    f"appropriately completes the request. \n\n{_INDENT}### Instruction:\n"
    f"{_INDENT}{{instruction}}\n\n{_INDENT}### Response:\n{_INDENT}"
)

_CHOOSE_ANSWER = (
    "Please choose the correct answer to the question: {question}\n\n{options}\n\nAnswer format: {answer_format}"
)
_INSTRUCTIONS_170K = {
    "arc_challenge": TaskFormat(_CHOOSE_ANSWER, "Answer"),
    "arc_easy": TaskFormat(_CHOOSE_ANSWER, "Answer"),
    "openbookqa": TaskFormat(_CHOOSE_ANSWER, "Answer"),
    "commonsense_qa": TaskFormat(_CHOOSE_ANSWER, "Answer"),
    "social_iqa": TaskFormat(
        "Please choose the correct answer to the question: {context} "
        "{question}\n\n{options}\n\nAnswer format: {answer_format}",
        "Answer",
    ),
    "piqa": TaskFormat(
        "Please choose the correct solution to the question: {goal}\n\n{options}\n\nAnswer format: {answer_format}",
        "Solution",
        "\n\n",
    ),
    "boolq": TaskFormat(
        "Please answer the following question with true or false, question: "
        "{question}?\n\nAnswer format: {answer_format}",
        verbalizers=("true", "false"),
    ),
    "hellaswag": TaskFormat(
        "Please choose the correct ending to complete the given sentence: "
        "{context}\n\n{options}\n\nAnswer format: {answer_format}",
        "Ending",
    ),
    "winogrande": TaskFormat(
        "Please choose the correct answer to fill in the blank to complete "
        "the given sentence: {sentence}\n\n{options} Answer format: "
        "{answer_format}",
        "Option",
    ),
}

_YES_NO, _NO_YES = ("yes", "no"), ("no", "yes")
_GLUE_YES_NO = {
    "cola": TaskFormat(
        "Sentence: {sentence}\nQuestion: Is this sentence grammatically acceptable?\nAnswer:", verbalizers=_NO_YES
    ),
    "sst2": TaskFormat(
        "Sentence: {sentence}\nQuestion: Is the sentiment of this sentence positive?\nAnswer:", verbalizers=_NO_YES
    ),
    "mrpc": TaskFormat(
        "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Do both sentences mean the same thing?\nAnswer:",
        verbalizers=_NO_YES,
    ),
    "qqp": TaskFormat(
        "Question 1: {question1}\nQuestion 2: {question2}\nQuestion: Do both questions ask the same thing?\nAnswer:",
        verbalizers=_NO_YES,
    ),
    "mnli": TaskFormat(
        "Premise: {premise}\nHypothesis: {hypothesis}\nQuestion: Does the premise "
        "entail the hypothesis? Yes, maybe, or no?\nAnswer:",
        verbalizers=("yes", "maybe", "no"),
    ),
    "qnli": TaskFormat(
        "Question: {question}\nSentence: {sentence}\nQuestion: Does the sentence answer the question?\nAnswer:",
        verbalizers=_YES_NO,
    ),
    "rte": TaskFormat(
        "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Does sentence 1 entail sentence 2?\nAnswer:",
        verbalizers=_YES_NO,
    ),
}

_QUESTION_ANSWER = TaskFormat("Question: {question}\nAnswer:")
_HARNESS = {
    "arc_challenge": _QUESTION_ANSWER,
    "arc_easy": _QUESTION_ANSWER,
    "commonsense_qa": _QUESTION_ANSWER,
    "openbookqa": TaskFormat("{question}"),
    "piqa": TaskFormat("Question: {goal}\nAnswer:"),
    "social_iqa": TaskFormat("Q: {context} {question}\nA:"),
    "boolq": TaskFormat("{passage}\nQuestion: {question}?\nAnswer:", verbalizers=_YES_NO),
    "hellaswag": TaskFormat("{context}"),
    "winogrande": TaskFormat(partial=True),
}

TEMPLATES: dict[str, Template] = {
    "commonsense_170k": Template(
        "commonsense_170k",
        "LLM-Adapters commonsense_170k instructions in a clean Alpaca wrapper",
        ALPACA_WRAPPER,
        "the correct answer is {answer}",
        True,
        _INSTRUCTIONS_170K,
    ),
    "llm_adapters": Template(
        "llm_adapters",
        "commonsense_170k instructions in LLM-Adapters' verbatim (indented) evaluation wrapper",
        LLM_ADAPTERS_WRAPPER,
        "the correct answer is {answer}",
        True,
        _INSTRUCTIONS_170K,
    ),
    "harness": Template(
        "harness",
        "lm-evaluation-harness zero-shot formats; log-likelihood of the answer text",
        "{instruction}",
        " {answer}",
        False,
        _HARNESS,
        generative=False,
    ),
    "glue_yes_no": Template(
        "glue_yes_no",
        "short GLUE yes/no questions ending in 'Answer:'",
        "{instruction}",
        " {answer}",
        True,
        _GLUE_YES_NO,
        ignore_case=True,
        whole_words=True,
    ),
}

DEFAULT_TEMPLATES = {"commonsense": "commonsense_170k", "glue": "glue_yes_no"}


def get_template(name: str | Template | None, task: str | Task) -> Template:
    """The named template (``None``: the task's benchmark default), checked to cover ``task``; a
    user's task renders with its own definition (:func:`own_template`), whatever ``name`` says."""
    task = get_task(task)
    if not task.is_builtin:
        return own_template(task)
    if isinstance(name, Template):
        template = name
    else:
        name = name or DEFAULT_TEMPLATES[task.benchmark]
        if name not in TEMPLATES:
            raise ValueError(f"Unknown template {name!r}; valid templates are {', '.join(TEMPLATES)}.")
        template = TEMPLATES[name]
    if task.name not in template.tasks:
        covering = [t.name for t in TEMPLATES.values() if task.name in t.tasks]
        raise ValueError(
            f"Template {template.name!r} has no format for task {task.name!r}; "
            f"templates that do: {', '.join(covering)}."
        )
    return template


def own_template(task: Task) -> Template:
    """The template of a user's task: its own ``doc_to_text``/``doc_to_choice``/``doc_to_target`` (or
    its file's columns), rendered by its loader; examples are scored by log-likelihood of the choices
    or by generation, as the task's ``output_type`` says."""
    return Template(
        "task",
        f"the task's own definition in {task.loader.origin}",
        "{instruction}",
        "{answer}",
        False,
        {task.name: TaskFormat()},
        generative=False,
    )


def answer_labels(template: Template, task: str, n_options: int) -> list[str]:
    """The answer labels a template uses for a task: verbalizers, or answer1..answerN."""
    fmt = template.tasks[task]
    if fmt.verbalizers:
        return list(fmt.verbalizers)
    return [f"{fmt.option_word.lower()}{i}" for i in range(1, n_options + 1)]


def render(template: Template, task: str, record: dict[str, Any]) -> dict[str, Any]:
    """Render one record: ``prompt``, ``choices``, ``choice_prompts``, ``gold``, ``target`` and
    ``answer_labels`` (see the module docstring)."""
    fmt = template.tasks[task]
    gold = int(record["label"])
    if fmt.partial:
        return _render_partial(template, record, gold)
    options = list(record.get("options") or fmt.verbalizers)
    labels = answer_labels(template, task, len(options))
    if len(labels) != len(options):
        raise ValueError(
            f"Task {task!r} record {record.get('id')!r} has {len(options)} options "
            f"but template {template.name!r} names {len(labels)} answers."
        )
    rendered_options = fmt.option_sep.join(f"{fmt.option_word}{i}: {text}" for i, text in enumerate(options, 1))
    instruction = fmt.text.format_map({**record, "options": rendered_options, "answer_format": "/".join(labels)})
    prompt = template.wrapper.format(instruction=instruction)
    answers = labels if template.answer_with_labels else (fmt.verbalizers or options)
    choices = [template.choice_format.format(answer=answer) for answer in answers]
    if not 0 <= gold < len(choices):
        raise ValueError(
            f"Task {task!r} record {record.get('id')!r}: gold label {gold} is out of range for {len(choices)} choices."
        )
    return {
        "prompt": prompt,
        "choices": choices,
        "choice_prompts": [prompt] * len(choices),
        "gold": gold,
        "target": choices[gold],
        "answer_labels": labels if template.generative else [],
    }


def _render_partial(template: Template, record: dict[str, Any], gold: int) -> dict[str, Any]:
    """WinoGrande as lm-evaluation-harness scores it: the prompt is the sentence up to the blank
    with the option filled in; the continuation is the rest of the sentence, the same for every
    option."""
    sentence = record["sentence"]
    blank = sentence.index("_")
    prompts = [template.wrapper.format(instruction=sentence[:blank] + option) for option in record["options"]]
    rest = template.choice_format.format(answer=sentence[blank + 1 :].strip())
    return {
        "prompt": prompts[gold],
        "choices": [rest] * len(prompts),
        "choice_prompts": prompts,
        "gold": gold,
        "target": rest,
        "answer_labels": [],
    }
