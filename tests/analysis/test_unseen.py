"""samora.analysis.unseen: per-example routing distributions, expert shares per subject and the collapse
statistics (entropy and top-expert share of the mean routing, bootstrap intervals over examples)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from samora.analysis import PCA_POINTS_NAME, analyze
from samora.analysis.unseen import ExampleRouting, collapse_statistics, expert_shares
from tests.analysis.test_analysis import batches, samora_model


def test_example_routing_averages_real_tokens_then_layers():
    first = torch.tensor([[[2.0, 2.0], [3.0, 1.0], [0.0, 9.0]]])  # one example, 3 positions, unnormalised
    second = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    recorder = ExampleRouting()
    recorder.add({"a": first, "b": second}, None, torch.tensor([[1, 1, 0]]))  # the padded position is left out
    # layer a: mean of (0.5, 0.5) and (0.75, 0.25) = (0.625, 0.375); layer b: (1, 0); mean over layers
    torch.testing.assert_close(recorder.distributions(), torch.tensor([[0.8125, 0.1875]], dtype=torch.float64))
    with pytest.raises(ValueError, match="same number of experts"):
        recorder.add({"a": first, "c": torch.ones(1, 3, 4)}, None, None)


def test_a_collapsed_router_has_zero_entropy_and_a_top_share_of_one():
    collapsed = torch.zeros(40, 8, dtype=torch.float64)
    collapsed[:, 5] = 1.0
    stats = collapse_statistics(collapsed, samples=200)
    assert stats["entropy"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert stats["top_share"]["value"] == 1.0 and stats["top_expert"] == 5


def test_entropy_of_the_mean_and_per_example_entropy_tell_spread_routing_from_sharp_routing():
    sharp = torch.zeros(40, 4, dtype=torch.float64)
    sharp[torch.arange(40), torch.arange(40) % 2] = 1.0  # each example on one expert, half on 0, half on 1
    stats = collapse_statistics(sharp, samples=500, seed=3)
    assert stats["entropy"]["value"] == pytest.approx(math.log(2) / math.log(4))  # two experts share the load
    assert stats["example_entropy"]["value"] == 0.0  # but every example is routed to one expert
    assert stats["top_share"]["value"] == pytest.approx(0.5)
    low, high = stats["top_share"]["low"], stats["top_share"]["high"]
    assert 0.5 <= low < high <= 0.8  # the resampled top share is the larger of two binomial shares
    uniform = collapse_statistics(torch.full((10, 4), 0.25, dtype=torch.float64), samples=50)
    assert uniform["entropy"]["value"] == pytest.approx(1.0) and uniform["top_share"]["value"] == pytest.approx(0.25)


def test_expert_shares_are_per_subject_means_and_labels_must_match_examples():
    distributions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    assert expert_shares(distributions, ["b", "a", "b"]) == {"b": [0.75, 0.25], "a": [0.0, 1.0]}
    with pytest.raises(ValueError, match="2 labels for 3 routed examples"):
        expert_shares(distributions, ["a", "b"])
    with pytest.raises(ValueError, match=r"expected \(examples, experts\)"):
        collapse_statistics(torch.zeros(0, 3))


def test_analyze_feeds_recorders_the_unseen_route_and_writes_the_pca_points(tmp_path):
    model = samora_model()
    recorder = ExampleRouting()
    analyze(model, batches(2), tmp_path, recorders=[recorder], save_pca_points=True)
    distributions = recorder.distributions()
    assert distributions.shape == (8, 3)
    torch.testing.assert_close(distributions.sum(1), torch.ones(8, dtype=torch.float64))
    points = json.loads((tmp_path / PCA_POINTS_NAME).read_text())
    entry = next(iter(points.values()))
    assert len(entry["points"]) == len(entry["experts"]) and set(entry["experts"]) == {0, 1, 2}


def test_per_layer_statistics_see_a_collapse_onto_a_different_expert_in_each_layer():
    layers = torch.zeros(30, 2, 4, dtype=torch.float64)
    layers[:, 0, 1] = 1.0  # layer 0 sends everything to expert 1
    layers[:, 1, 3] = 1.0  # layer 1 sends everything to expert 3
    recorder = ExampleRouting()
    recorder.parts.append(layers)
    mixed = collapse_statistics(recorder.distributions(), samples=100)
    assert mixed["entropy"]["value"] == pytest.approx(0.5) and mixed["top_share"]["value"] == 0.5
    per_layer = collapse_statistics(recorder.layer_distributions(), samples=100)
    assert per_layer["layers"] == 2 and "top_expert" not in per_layer
    assert per_layer["entropy"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert per_layer["top_share"] == {"value": 1.0, "low": 1.0, "high": 1.0}
