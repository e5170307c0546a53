"""Router diagnostics as the paper's figures: expert usage per task, collapse, expert PCA, task gates.

``analyze(model, batches, output_dir)`` runs collated batches through an adapted model and writes
``analysis.json`` plus PNG figures; :class:`RouterUsage` is the accumulator it shares with the
training loop's router statistics.
"""

from samora.analysis.analyze import RESULTS_NAME, RouterCollapseWarning, analyze
from samora.analysis.features import expert_outputs, pca_2d, separation, task_gate_values
from samora.analysis.usage import OTHER, RouterUsage, collapse_warning, find_collapse, load_entropy

__all__ = [
    "OTHER",
    "RESULTS_NAME",
    "RouterCollapseWarning",
    "RouterUsage",
    "analyze",
    "collapse_warning",
    "expert_outputs",
    "find_collapse",
    "load_entropy",
    "pca_2d",
    "separation",
    "task_gate_values",
]
