import pytest

from samora.data.local import parse_instruction
from samora.data.templates import (
    ALPACA_WRAPPER,
    LLM_ADAPTERS_WRAPPER,
    TEMPLATES,
    get_template,
    render,
)

# Instructions and answers in LLM-Adapters' commonsense data: ARC, BoolQ, PIQA, SIQA and WinoGrande
# copied from published evaluation logs of LLM-Adapters/DoRA runs; HellaSwag from a paper's example
# table, laid out as in those logs.
LLM_ADAPTERS_RECORDS = {
    "arc_challenge": (
        "Please choose the correct answer to the question: When an animal population moves a long "
        "distance to another area in order to survive it is called\n\nAnswer1: breeding. Answer2: "
        "hibernation. Answer3: migration. Answer4: navigation.\n\nAnswer format: "
        "answer1/answer2/answer3/answer4",
        "answer3",
    ),
    "boolq": (
        "Please answer the following question with true or false, question: is i cant believe its "
        "not butter margarine?\n\nAnswer format: true/false",
        "true",
    ),
    "piqa": (
        "Please choose the correct solution to the question: Retain study notes in brain.\n\n"
        "Solution1: Go over notes one last time one week before test.\n\nSolution2: Go over notes "
        "one last time one day before test.\n\nAnswer format: solution1/solution2",
        "solution2",
    ),
    "social_iqa": (
        "Please choose the correct answer to the question: Robin wanted to share the food with a "
        "friend, so they cut the sandwich in half. What does Robin need to do before this?\n\n"
        "Answer1: get a knife Answer2: eat half of her own sandwich Answer3: give half the "
        "sandwich to her friend\n\nAnswer format: answer1/answer2/answer3",
        "answer1",
    ),
    "hellaswag": (
        "Please choose the correct ending to complete the given sentence: Playing drums: People "
        "are standing behind large drums. A man\n\nEnding1: is playing a bag pipe. Ending2: starts "
        "to play around the drums. Ending3: begins playing a drum set. Ending4: begins playing the "
        "drums.\n\nAnswer format: ending1/ending2/ending3/ending4",
        "ending4",
    ),
    "winogrande": (
        "Please choose the correct answer to fill in the blank to complete the given sentence: The "
        "jeans fit worse than the shirt because I had tried the _ on at the store.\n\nOption1: "
        "jeans Option2: shirt Answer format: option1/option2",
        "option2",
    ),
}

SAMPLE_RECORDS = {
    "arc_challenge": {
        "question": "Which gas do plants take in?",
        "label": 1,
        "options": ["oxygen", "carbon dioxide", "helium", "neon"],
    },
    "openbookqa": {
        "question": "The sun is responsible for",
        "label": 0,
        "options": ["plants sprouting", "puppies", "wilting", "rust"],
    },
    "commonsense_qa": {"question": "Where is a bank?", "label": 4, "options": ["sea", "sky", "moon", "mall", "city"]},
    "piqa": {"goal": "Open a jar", "label": 0, "options": ["twist the lid", "smash it"]},
    "social_iqa": {
        "context": "Kai won.",
        "question": "How does Kai feel?",
        "label": 2,
        "options": ["sad", "bored", "happy"],
    },
    "boolq": {"passage": "Water -- Water is wet.", "question": "is water wet", "label": 0},
    "hellaswag": {
        "context": "Cooking: A man cracks an egg. He",
        "label": 3,
        "options": ["sings.", "flies.", "sleeps.", "fries it."],
    },
    "winogrande": {
        "sentence": "Sarah was a better surgeon than Maria so _ got the easy cases.",
        "label": 1,
        "options": ["Sarah", "Maria"],
    },
    "cola": {"sentence": "The cat sat.", "label": 1},
    "sst2": {"sentence": "a charming journey", "label": 1},
    "mrpc": {"sentence1": "He left.", "sentence2": "He went away.", "label": 1},
    "qqp": {"question1": "How to cook?", "question2": "How do I cook?", "label": 1},
    "mnli": {"premise": "A dog runs.", "hypothesis": "An animal moves.", "label": 0},
    "qnli": {"question": "Who ran?", "sentence": "Bob ran.", "label": 0},
    "rte": {"sentence1": "Bob ran home.", "sentence2": "Bob moved.", "label": 0},
}
SAMPLE_RECORDS["arc_easy"] = SAMPLE_RECORDS["arc_challenge"]


@pytest.mark.parametrize("task", list(LLM_ADAPTERS_RECORDS))
def test_commonsense_170k_reproduces_llm_adapters_instructions(task):
    instruction, answer = LLM_ADAPTERS_RECORDS[task]
    record = parse_instruction(task, instruction, answer)
    example = render(TEMPLATES["commonsense_170k"], task, record)
    assert example["prompt"] == ALPACA_WRAPPER.format(instruction=instruction)
    assert example["target"] == f"the correct answer is {answer}"
    assert example["answer_labels"][example["gold"]] == answer
    assert instruction.endswith("Answer format: " + "/".join(example["answer_labels"]))


def test_llm_adapters_wrapper_is_verbatim():
    expected = (
        "Below is an instruction that describes a task. Write a response that "
        "appropriately completes the request. \n\n                ### Instruction:\n"
        "                Q?\n\n                ### Response:\n                "
    )
    assert LLM_ADAPTERS_WRAPPER.format(instruction="Q?") == expected
    assert ALPACA_WRAPPER.format(instruction="Q?") == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nQ?\n\n### Response:\n"
    )


@pytest.mark.parametrize(
    "name, task", [(name, task) for name, template in TEMPLATES.items() for task in template.tasks]
)
def test_every_template_renders_every_task_it_covers(name, task):
    record = {"id": "0", **SAMPLE_RECORDS[task]}
    example = render(TEMPLATES[name], task, record)
    n = len(record.get("options") or TEMPLATES[name].tasks[task].verbalizers)
    assert len(example["choices"]) == len(example["choice_prompts"]) == n
    assert example["gold"] == record["label"]
    assert example["target"] == example["choices"][example["gold"]]
    assert example["prompt"] == example["choice_prompts"][example["gold"]]
    if TEMPLATES[name].generative:
        assert len(example["answer_labels"]) == n
    else:
        assert example["answer_labels"] == []


def test_harness_formats():
    harness = TEMPLATES["harness"]
    arc = render(harness, "arc_challenge", SAMPLE_RECORDS["arc_challenge"])
    assert arc["prompt"] == "Question: Which gas do plants take in?\nAnswer:"
    assert arc["choices"] == [" oxygen", " carbon dioxide", " helium", " neon"]
    boolq = render(harness, "boolq", SAMPLE_RECORDS["boolq"])
    assert boolq["prompt"] == "Water -- Water is wet.\nQuestion: is water wet?\nAnswer:"
    assert boolq["choices"] == [" yes", " no"]
    wino = render(harness, "winogrande", SAMPLE_RECORDS["winogrande"])
    assert wino["choice_prompts"] == [
        "Sarah was a better surgeon than Maria so Sarah",
        "Sarah was a better surgeon than Maria so Maria",
    ]
    assert wino["choices"] == [" got the easy cases."] * 2


def test_glue_yes_no_follows_glue_label_order():
    glue = TEMPLATES["glue_yes_no"]
    rte = render(glue, "rte", SAMPLE_RECORDS["rte"])  # label 0 = entailment
    assert rte["prompt"].endswith("Question: Does sentence 1 entail sentence 2?\nAnswer:")
    assert rte["target"] == " yes"
    assert render(glue, "mrpc", SAMPLE_RECORDS["mrpc"])["target"] == " yes"  # 1 = equivalent
    assert render(glue, "mnli", {**SAMPLE_RECORDS["mnli"], "label": 1})["target"] == " maybe"
    assert render(glue, "cola", {**SAMPLE_RECORDS["cola"], "label": 0})["target"] == " no"


def test_boolq_instruction_adds_the_question_mark():
    example = render(TEMPLATES["commonsense_170k"], "boolq", SAMPLE_RECORDS["boolq"])
    assert "question: is water wet?\n\nAnswer format: true/false\n\n### Response:\n" in example["prompt"]
    assert example["choices"] == ["the correct answer is true", "the correct answer is false"]


def test_get_template_errors_name_the_fix():
    with pytest.raises(ValueError, match="valid templates are commonsense_170k"):
        get_template("nope", "boolq")
    with pytest.raises(ValueError, match="templates that do: commonsense_170k, llm_adapters"):
        get_template("glue_yes_no", "arc_easy")
    assert get_template(None, "rte").name == "glue_yes_no"
    assert get_template(None, "piqa").name == "commonsense_170k"


def test_out_of_range_gold_is_an_error():
    with pytest.raises(ValueError, match="gold label 5 is out of range"):
        render(TEMPLATES["commonsense_170k"], "piqa", {**SAMPLE_RECORDS["piqa"], "label": 5})
