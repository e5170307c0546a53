"""The columns every task's rendered examples share, built-in and users' tasks alike (see
:func:`samora.data.load_examples`)."""

import datasets

EXAMPLE_FEATURES = datasets.Features(
    {
        "task": datasets.Value("string"),
        "id": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "choices": datasets.List(datasets.Value("string")),
        "choice_prompts": datasets.List(datasets.Value("string")),
        "gold": datasets.Value("int64"),
        "target": datasets.Value("string"),
        "answer_labels": datasets.List(datasets.Value("string")),
    }
)
