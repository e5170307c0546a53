"""Router diagnostics as the paper's figures: expert usage per task, collapse, expert PCA, task gates.

``analyze(model, batches, output_dir)`` runs collated batches through an adapted model and writes
``analysis.json`` plus PNG figures; :class:`RouterUsage` is the accumulator it shares with the
training loop's router statistics. :mod:`samora.analysis.unseen` holds per-example routing and the
collapse statistics of the routing study (tasks the adapter never saw), :mod:`samora.analysis.routing_study`
its per-cell analysis and summary figures.
"""

from samora.analysis.analyze import PCA_POINTS_NAME, RESULTS_NAME, RouterCollapseWarning, analyze
from samora.analysis.features import expert_outputs, pca_2d, separation, task_gate_values
from samora.analysis.unseen import ExampleRouting, collapse_statistics, expert_shares
from samora.analysis.usage import OTHER, RouterUsage, collapse_warning, find_collapse, load_entropy

__all__ = [
    "OTHER",
    "PCA_POINTS_NAME",
    "RESULTS_NAME",
    "ExampleRouting",
    "RouterCollapseWarning",
    "RouterUsage",
    "analyze",
    "collapse_statistics",
    "collapse_warning",
    "expert_outputs",
    "expert_shares",
    "find_collapse",
    "load_entropy",
    "pca_2d",
    "separation",
    "task_gate_values",
]
