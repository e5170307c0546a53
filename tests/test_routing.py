"""Task-id resolution: names, ints, tensors, broadcasting, beam expansion, and the errors."""

from __future__ import annotations

import pytest
import torch

from samora.routing import resolve_generation_task_ids, resolve_task_ids

TASKS = ["arc", "boolq", "piqa"]


def resolve(task_ids, batch=3, **kwargs):
    return resolve_task_ids(task_ids, TASKS, batch, allow_unseen=kwargs.pop("allow_unseen", True), **kwargs)


@pytest.mark.parametrize(
    "given,expected",
    [
        (["piqa", "arc", "boolq"], [2, 0, 1]),
        ([2, 0, -1], [2, 0, -1]),
        (["piqa", 0, -1], [2, 0, -1]),
        (torch.tensor([1, 1, 0]), [1, 1, 0]),
        (torch.tensor(2), [2, 2, 2]),
        ("boolq", [1, 1, 1]),
        (1, [1, 1, 1]),
    ],
)
def test_accepted_forms(given, expected):
    assert resolve(given).tolist() == expected


def test_none_stays_none():
    assert resolve(None) is None


def test_a_list_is_never_repeated_to_fit_the_batch():
    with pytest.raises(ValueError, match="2 entries for a batch of 6"):
        resolve(["arc", "piqa"], batch=6)


def resolve_for_generate(task_ids, batch=2, rows_per_example=3):
    return resolve_generation_task_ids(task_ids, TASKS, batch, rows_per_example, allow_unseen=True)


@pytest.mark.parametrize(
    "given", [["arc", "piqa"], torch.tensor([0, 2]), [0, 0, 0, 2, 2, 2], torch.tensor([0, 0, 0, 2, 2, 2])]
)
def test_generate_takes_one_id_per_example_or_per_row(given):
    assert resolve_for_generate(given).tolist() == [0, 2]


def test_generate_broadcasts_a_single_task():
    assert resolve_for_generate("boolq").tolist() == [1, 1]


@pytest.mark.parametrize("given", [["arc"], ["arc", "piqa", "boolq"], [0, 2, 0, 2, 0, 2, 0], torch.tensor([0])])
def test_generate_refuses_a_length_that_fits_neither_the_batch_nor_its_rows(given):
    with pytest.raises(
        ValueError,
        match=r"entries for a generate batch of 2 examples; give one id per example "
        r"\(2 entries\) or one per generated row \(6\)",
    ):
        resolve_for_generate(given)


def test_generate_refuses_rows_of_one_example_with_different_tasks():
    with pytest.raises(ValueError, match="rows of one example differ"):
        resolve_for_generate([0, 0, 1, 2, 2, 2])


def test_unknown_name_lists_known_tasks():
    with pytest.raises(ValueError, match=r"unknown task 'siqa'.*0: 'arc'.*2: 'piqa'"):
        resolve(["siqa", "arc", "arc"])


@pytest.mark.parametrize("bad", [[0, 1, 3], [0, -2, 1], torch.tensor([5, 0, 0])])
def test_out_of_range_ids(bad):
    with pytest.raises(ValueError, match="out of range"):
        resolve(bad)


def test_unseen_refused_when_method_needs_a_task():
    with pytest.raises(ValueError, match="unseen"):
        resolve([0, -1, 1], allow_unseen=False)


@pytest.mark.parametrize(
    "bad,error",
    [
        (torch.tensor([0.0, 1.0, 2.0]), TypeError),
        (torch.zeros(3, 2, dtype=torch.long), ValueError),
        ([0.5, 1, 2], TypeError),
        ([True, 0, 1], TypeError),
    ],
)
def test_wrong_types_and_shapes(bad, error):
    with pytest.raises(error):
        resolve(bad)
