"""The two sides of the own-task parity check: lm-eval and samora scoring the same task YAMLs.

The task files are ``goldens/own_tasks/parity_mc.yaml`` (multiple_choice) and ``parity_gen.yaml``
(generate_until, two filters), each on a local JSON-lines file named relative to that folder (lm-eval
resolves ``data_files`` against the working directory, so both sides read them from there).

- lm-eval's side (:func:`lm_eval_records`): ``lm_eval.simple_evaluate`` with the folder as
  ``include_path``, ``log_samples``, with or without ``apply_chat_template`` / ``system_instruction``;
  per document its contexts and continuations as lm-eval built them, then its log-likelihoods with
  ``acc`` / ``acc_norm``, or its generated text with each filter's answer and ``exact_match``.
- samora's side (:func:`samora_examples`): the same YAML files read by samora's own task loader
  (a :class:`samora.data.tasks.Task` with the YAML's output type, metric_list, filter_list,
  generation_kwargs and target delimiter, and its documents rendered into samora's example rows).

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


def samora_examples() -> dict[str, tuple[Task, Any]]:
    """task -> (samora Task, example rows) of the parity YAMLs, read and rendered by samora's own
    task-YAML loader (:func:`samora.data.task_yaml.yaml_task`), as ``data.tasks=[parity_mc.yaml]`` does."""
    from samora.data.sources import load_examples
    from samora.data.task_yaml import yaml_task

    tasks = [yaml_task(TASK_FOLDER / f"{name.removeprefix('samora_')}.yaml") for name in TASK_NAMES]
    return {task.name: (task, load_examples(task, "eval")) for task in tasks}
