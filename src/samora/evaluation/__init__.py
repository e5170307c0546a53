"""Evaluation: log-likelihood and generation protocols, generate_until tasks (filters and text
metrics), metrics, results JSON and tables.

>>> from samora.evaluation import evaluate, format_table, write_results
>>> results = evaluate(model, tokenizer, "commonsense", protocol="loglik", limit=200)
>>> print(format_table(results)); write_results(results, "results/commonsense.json")

The names below are imported on first use (PEP 562 ``__getattr__``), so reading a submodule that needs
no torch (:mod:`samora.evaluation.settings`, which the command line checks a configuration with) loads none.
"""

from __future__ import annotations

from samora.files import lazy_export

#: public name -> the module that defines it
_EXPORTS = {
    "UNPARSED": "samora.evaluation.answers",
    "extract_answer": "samora.evaluation.answers",
    "adapter_identity": "samora.evaluation.suite",
    "evaluate": "samora.evaluation.suite",
    "model_identity": "samora.evaluation.suite",
    "routed_task_id": "samora.evaluation.suite",
    "routing_tasks": "samora.evaluation.suite",
    "apply_filters": "samora.evaluation.filters",
    "generate_responses": "samora.evaluation.generation",
    "choice_length": "samora.evaluation.loglik",
    "loglik_scores": "samora.evaluation.loglik",
    "METRICS": "samora.evaluation.metrics",
    "accuracy": "samora.evaluation.metrics",
    "compute_metrics": "samora.evaluation.metrics",
    "f1_score": "samora.evaluation.metrics",
    "matthews_corrcoef": "samora.evaluation.metrics",
    "read_samples": "samora.evaluation.results_files",
    "write_results": "samora.evaluation.results_files",
    "write_samples": "samora.evaluation.results_files",
    "format_table": "samora.evaluation.results_table",
    "bootstrap_grid": "samora.evaluation.statistics",
    "bootstrap_metric": "samora.evaluation.statistics",
    "bootstrap_task_mean": "samora.evaluation.statistics",
    "paired_test": "samora.evaluation.statistics",
    "EvaluationOptions": "samora.evaluation.task_results",
    "PROTOCOLS": "samora.evaluation.settings",
    "TEXT_METRICS": "samora.evaluation.text_metrics",
    "register_text_metric": "samora.evaluation.text_metrics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    return lazy_export(__name__, _EXPORTS, globals(), name)
