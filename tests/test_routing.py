"""Task-id resolution: names, ints, tensors, broadcasting, beam expansion, and the errors."""

from __future__ import annotations

import pytest
import torch

from samora.routing import resolve_task_ids

TASKS = ["arc", "boolq", "piqa"]


def resolve(task_ids, batch=3, **kwargs):
    return resolve_task_ids(task_ids, TASKS, batch, allow_unseen=kwargs.pop("allow_unseen", True), **kwargs)


@pytest.mark.parametrize("given,expected", [
    (["piqa", "arc", "boolq"], [2, 0, 1]),
    ([2, 0, -1], [2, 0, -1]),
    (["piqa", 0, -1], [2, 0, -1]),
    (torch.tensor([1, 1, 0]), [1, 1, 0]),
    (torch.tensor(2), [2, 2, 2]),
    ("boolq", [1, 1, 1]),
    (1, [1, 1, 1]),
])
def test_accepted_forms(given, expected):
    assert resolve(given).tolist() == expected


def test_none_stays_none():
    assert resolve(None) is None


def test_list_expands_per_beam_only_while_generating():
    assert resolve(["arc", "piqa"], batch=6, allow_expand=True).tolist() == [0, 0, 0, 2, 2, 2]
    with pytest.raises(ValueError, match="2 entries for a batch of 6"):
        resolve(["arc", "piqa"], batch=6)


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


@pytest.mark.parametrize("bad,error", [(torch.tensor([0.0, 1.0, 2.0]), TypeError), (torch.zeros(3, 2, dtype=torch.long), ValueError),
                                       ([0.5, 1, 2], TypeError), ([True, 0, 1], TypeError)])
def test_wrong_types_and_shapes(bad, error):
    with pytest.raises(error):
        resolve(bad)
