"""Evaluation: log-likelihood and generation protocols, generate_until tasks (filters and text
metrics), metrics, results JSON and tables.

>>> from samora.evaluation import evaluate, format_table, write_results
>>> results = evaluate(model, tokenizer, "commonsense", protocol="loglik", limit=200)
>>> print(format_table(results)); write_results(results, "results/commonsense.json")
"""

from samora.evaluation.answers import UNPARSED, extract_answer
from samora.evaluation.evaluate import (
    adapter_identity,
    evaluate,
    model_identity,
    routed_task_id,
    routing_tasks,
)
from samora.evaluation.filters import apply_filters
from samora.evaluation.generation import generate_responses
from samora.evaluation.loglik import choice_length, loglik_scores
from samora.evaluation.metrics import (
    METRICS,
    accuracy,
    compute_metrics,
    f1_score,
    matthews_corrcoef,
)
from samora.evaluation.results_files import read_samples, write_results, write_samples
from samora.evaluation.results_table import format_table
from samora.evaluation.statistics import (
    bootstrap_grid,
    bootstrap_metric,
    bootstrap_task_mean,
    paired_test,
)
from samora.evaluation.task_results import PROTOCOLS, EvaluationOptions
from samora.evaluation.text_metrics import TEXT_METRICS, register_text_metric

__all__ = [
    "METRICS",
    "EvaluationOptions",
    "PROTOCOLS",
    "TEXT_METRICS",
    "UNPARSED",
    "accuracy",
    "adapter_identity",
    "apply_filters",
    "bootstrap_grid",
    "bootstrap_metric",
    "bootstrap_task_mean",
    "choice_length",
    "compute_metrics",
    "evaluate",
    "extract_answer",
    "f1_score",
    "format_table",
    "generate_responses",
    "loglik_scores",
    "matthews_corrcoef",
    "model_identity",
    "paired_test",
    "read_samples",
    "register_text_metric",
    "routed_task_id",
    "routing_tasks",
    "write_results",
    "write_samples",
]
