import pytest

from samora.data import BENCHMARKS, TASKS, get_task, resolve_split, resolve_tasks
from samora.data.templates import DEFAULT_TEMPLATES, TEMPLATES
from samora.evaluation.metrics import METRICS


def test_benchmark_orders_are_the_papers():
    assert BENCHMARKS["commonsense"] == [
        "arc_challenge",
        "arc_easy",
        "openbookqa",
        "piqa",
        "social_iqa",
        "boolq",
        "hellaswag",
        "winogrande",
        "commonsense_qa",
    ]
    assert BENCHMARKS["glue"] == ["cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte"]
    assert sorted(TASKS) == sorted(BENCHMARKS["commonsense"] + BENCHMARKS["glue"])


@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_task_ids_are_positions_in_the_benchmark(benchmark):
    for position, name in enumerate(BENCHMARKS[benchmark]):
        assert TASKS[name].task_id == position
        assert TASKS[name].benchmark == benchmark


@pytest.mark.parametrize(
    "alias, name",
    [
        ("ARC-C", "arc_challenge"),
        ("arc-e", "arc_easy"),
        ("ARC-Challenge", "arc_challenge"),
        ("obqa", "openbookqa"),
        ("SIQA", "social_iqa"),
        ("social_i_qa", "social_iqa"),
        ("csqa", "commonsense_qa"),
        ("SST-2", "sst2"),
        ("mnli_matched", "mnli"),
        (" BoolQ ", "boolq"),
    ],
)
def test_aliases_resolve(alias, name):
    assert get_task(alias).name == name


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown task 'arc-x'") as err:
        get_task("arc-x")
    message = str(err.value)
    assert "arc_challenge" in message and "rte" in message and "siqa" in message


def test_resolve_tasks_expands_benchmarks_and_aliases():
    assert resolve_tasks("commonsense") == BENCHMARKS["commonsense"]
    assert resolve_tasks(["ARC-C", "siqa"]) == ["arc_challenge", "social_iqa"]
    assert resolve_tasks("boolq, piqa") == ["boolq", "piqa"]
    assert resolve_tasks(["glue", "boolq"]) == BENCHMARKS["glue"] + ["boolq"]


@pytest.mark.parametrize(
    "spec, match", [(["boolq", "BoolQ"], "more than once"), ([], "No tasks"), (["nope"], "Unknown task")]
)
def test_resolve_tasks_rejects_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve_tasks(spec)


def test_resolve_split():
    assert resolve_split("arc_challenge", "eval") == "test"
    assert resolve_split("boolq", "eval") == "validation"
    assert resolve_split("mnli", "eval") == "validation_matched"
    assert resolve_split("mnli", "validation") == "validation_matched"
    assert resolve_split("rte", "dev") == "validation"
    with pytest.raises(ValueError, match="valid splits are train, validation"):
        resolve_split("piqa", "test")


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_complete(name):
    task = TASKS[name]
    assert task.eval_split in task.splits and "train" in task.splits
    assert all(metric in METRICS for metric in task.metrics)
    assert task.hub[0]
    assert name in TEMPLATES[DEFAULT_TEMPLATES[task.benchmark]].tasks
