"""The two sides of the own-task parity check: lm-eval and samora scoring the same task YAMLs.

The task files are ``goldens/own_tasks/parity_mc.yaml`` (multiple_choice) and ``parity_gen.yaml``
(generate_until, two filters), each on a local JSON-lines file named relative to that folder (lm-eval
resolves ``data_files`` against the working directory, so both sides read them from there).

- lm-eval's side (:func:`lm_eval_records`): ``lm_eval.simple_evaluate`` with the folder as
  ``include_path``, ``log_samples``, with or without ``apply_chat_template`` / ``system_instruction``;
  per document its contexts and continuations as lm-eval built them, then its log-likelihoods with
  ``acc`` / ``acc_norm``, or its generated text with each filter's answer and ``exact_match``.
- samora's side (:func:`samora_examples`): the same documents rendered by lm-eval's own
  ``ConfigurableTask`` (``doc_to_text``, ``doc_to_choice``, ``doc_to_target``) into samora's example
  columns and a :class:`samora.data.tasks.Task` carrying the YAML's output type, metric_list,
  filter_list, generation_kwargs and target delimiter, as the own-task loader declares them.
  (Once the loader of branch ``tasks`` is merged, it replaces this function: load the YAML through
  samora and compare the same records.)

benchmarks/own_task_goldens.py commits lm-eval's records on SmolLM2 as goldens; the tests compare
samora with them, and with lm-eval run live on a tiny model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samora.data.tasks import Task

TASK_FOLDER = Path(__file__).with_name("goldens") / "own_tasks"
TASK_NAMES = ("samora_parity_mc", "samora_parity_gen")
SYSTEM_PROMPT = "Answer in as few words as you can."


def task_manager() -> Any:
    """lm-eval's task index of the parity folder alone (indexing lm-eval's own tasks takes ~20 s)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASK_FOLDER), include_defaults=False)


@contextlib.contextmanager
def in_task_folder() -> Iterator[None]:
    with contextlib.chdir(TASK_FOLDER):
        yield


def lm_eval_records(lm: Any, *, chat: bool, batch_size: int = 4) -> dict[str, list[dict[str, Any]]]:
    """task -> lm-eval's record per document (module docstring), run on the lm-eval model ``lm``."""
    import lm_eval

    with in_task_folder():
        output = lm_eval.simple_evaluate(
            model=lm,
            tasks=list(TASK_NAMES),
            task_manager=task_manager(),
            batch_size=batch_size,
            log_samples=True,
            apply_chat_template=chat,
            system_instruction=SYSTEM_PROMPT if chat else None,
        )
    return {task: _per_document(output["samples"][task]) for task in TASK_NAMES}


def _per_document(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """lm-eval logs one sample per document and filter; merge them into one record per document."""
    records: dict[int, dict[str, Any]] = {}
    for sample in sorted(samples, key=lambda s: s["doc_id"]):
        record = records.setdefault(
            sample["doc_id"],
            {
                "id": sample["doc"]["id"],
                "contexts": [arguments[0] for arguments in sample["arguments"]],
                "continuations": [arguments[1] for arguments in sample["arguments"] if isinstance(arguments[1], str)],
            },
        )
        if "acc" in sample:
            record.update(
                loglik=[float(r[0]) for r in sample["filtered_resps"]], acc=sample["acc"], acc_norm=sample["acc_norm"]
            )
        else:
            record["response"] = sample["resps"][0][0]
            record.setdefault("filtered", {})[sample["filter"]] = sample["filtered_resps"][0]
            record.setdefault("exact_match", {})[sample["filter"]] = float(sample["exact_match"])
    return list(records.values())


def samora_examples() -> dict[str, tuple[Task, dict[str, list]]]:
    """task -> (samora Task, rendered example columns) of the parity YAMLs, rendered by lm-eval."""
    with in_task_folder():
        loaded = task_manager().load_task_or_group(list(TASK_NAMES))
    return {name: (_samora_task(task.config), _rendered(task)) for name, task in loaded.items()}


def _samora_task(config: Any) -> Task:
    return Task(
        name=config.task,
        benchmark="own",
        aliases=(),
        splits=("test",),
        eval_split="test",
        metrics=tuple(entry["metric"] for entry in config.metric_list),
        hub=("json", None),
        output_type=config.output_type,
        metric_list=tuple(config.metric_list),
        filter_list=tuple(config.filter_list or ()),
        generation_kwargs=config.generation_kwargs,
        target_delimiter=config.target_delimiter,
    )


def _rendered(task: Any) -> dict[str, list]:
    """samora's example columns of the task's test documents (the contract of branch ``tasks``)."""
    columns: dict[str, list] = {key: [] for key in ("id", "prompt", "choices", "choice_prompts", "gold", "target")}
    for doc in task.test_docs():
        prompt, target = task.doc_to_text(doc), task.doc_to_target(doc)
        if task.config.output_type == "multiple_choice":
            choices = [task.config.target_delimiter + choice for choice in task.doc_to_choice(doc)]
            gold, target = target, choices[target]
        else:
            choices, gold, target = [], -1, str(target)
        columns["id"].append(doc["id"])
        columns["prompt"].append(prompt)
        columns["choices"].append(choices)
        columns["choice_prompts"].append([prompt] * len(choices))
        columns["gold"].append(gold)
        columns["target"].append(target)
    columns["answer_labels"] = [[] for _ in columns["id"]]
    return columns
