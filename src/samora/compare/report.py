"""The words and the tables of a comparison (``comparison.md``); the plot is :mod:`samora.compare.plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CORPUS_NOTES = {
    "mcc": "MCC (Matthews correlation of the task's predictions and gold labels, per seed on all its examples) "
    "lies in [-1, 1], 0 being no better than chance; it is shown x100 like accuracy.",
    "f1": "F1 of a choice task is the corpus F1 of its positive class (per seed on all its examples), x100.",
}


def answer_lines(comparison: dict[str, Any]) -> list[str]:
    """The answer in words: each row's mean with its interval, then every paired difference and
    whether it is significant, then what the run does and does not show."""
    table, paired = comparison["table"], comparison["paired"]
    counts = sorted(set(comparison["examples_per_task"].values()))
    n = f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}-{counts[-1]}"
    seeds = _seed_counts(table)
    headline = ", ".join(f"{label} {_points(row['mean'])}" for label, row in table.items())
    lines = [
        f"{headline} (mean {metric_phrase(comparison)} over {len(comparison['tasks'])} tasks, 95% CI, "
        f"{n} examples per task, {seeds} seed{'s' * (seeds != '1')} per method)"
    ]
    if comparison["pending"]:
        finished = sum(len(row["seeds"]) for row in table.values())
        lines.append(
            f"PARTIAL: {finished} of {finished + len(comparison['pending'])} training cells finished; "
            f"not yet run: {', '.join(comparison['pending'])}. Rerun the same command to continue."
        )
    for against, tests in (("reference", paired["vs_reference"]), ("base", paired["vs_base"])):
        other = paired["reference"] if against == "reference" else "base"
        for label, test in tests.items():
            lines.append(
                f"{label} - {other} = {_points(test, signed=True)} (paired bootstrap over examples and "
                f"{len(test['seeds'])} seed(s), p = {test['p_value']:.3f}, Holm p = {test['p_holm']:.3f}): "
                f"{_verdict(test, paired['family_size'])}"
            )
    return lines + _scope_lines(comparison)


def _scope_lines(comparison: dict[str, Any]) -> list[str]:
    settings = comparison["settings"]
    significant: dict[frozenset[str], str] = {}  # one phrase per distinct pair, in the order first listed
    for tests, other in paired_test_groups(comparison["paired"]):
        for label, test in tests.items():
            if test["significant_holm"]:
                significant.setdefault(frozenset((label, other)), f"{label} vs {other}")
    shows = (
        f"What it shows: on these held-out examples, after {settings['steps'] or settings['epochs']} "
        f"{'steps' if settings['steps'] else 'epochs'} at lr {settings['learning_rate']} on one shared "
        f"training stream, {_budget_phrase(comparison)}, "
        + (
            "these differences exceed the noise of the examples and seeds after Holm's correction for "
            f"{comparison['paired']['family_size']} distinct tests: {', '.join(significant.values())}."
            if significant
            else "no difference between rows exceeds the noise of the examples and seeds."
        )
    )
    seeds = _seed_counts(comparison["table"])
    does_not = (
        "What it does not show: results at full training length, on other models or larger ones, "
        f"under another protocol or template than `{settings['protocol']}` / "
        f"{_template_phrase(settings['template'])}; "
        "a difference that is not significant is not evidence that the methods are equal, and "
        f"{seeds} seed(s) per row estimate the spread between training runs only roughly."
    )
    lines = [shows, does_not]
    if comparison["label_bias"]:
        lines.append(
            "Label bias: one choice is predicted far more often than it is the gold answer in "
            f"{', '.join(_label_bias_cases(comparison['label_bias']))}; scores there measure that bias, not knowledge."
        )
    return lines


def _label_bias_cases(flagged: list[dict[str, Any]]) -> list[str]:
    """One phrase per row, task and choice: the largest share of predictions any of its cells gave it."""
    largest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for entry in flagged:
        key = (entry["row"], entry["task"], entry["choice"])
        if key not in largest or entry["pred_share"] > largest[key]["pred_share"]:
            largest[key] = entry
    return [
        f"{row}:{task} (choice {choice} in up to {entry['pred_share']:.0%} of predictions, "
        f"{entry['gold_share']:.0%} of golds)"
        for (row, task, choice), entry in sorted(largest.items())
    ]


def write_markdown(comparison: dict[str, Any], path: Path) -> Path:
    """``comparison.md``: the answer, then the tables of scores, paired tests, parameters and cells."""
    lines = [
        "# Comparison",
        "",
        *comparison["answer"],
        "",
        *_score_lines(comparison),
        "",
        *_paired_test_lines(comparison),
        "",
        *_parameter_lines(comparison),
        "",
        *_cell_lines(comparison["cells"]),
        "",
        "![comparison](comparison.png)",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def paired_test_groups(paired: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """The paired tests, grouped by what they compare against: (tests by row label, the other row)."""
    return [
        (paired["vs_reference"], paired["reference"]),
        (paired["vs_base"], "base"),
        *[(tests, other) for other, tests in paired.get("vs_also", {}).items()],
    ]


def _score_lines(comparison: dict[str, Any]) -> list[str]:
    tasks = comparison["tasks"]
    lines = [
        f"## {metric_phrase(comparison)} per task and mean ({unit(comparison)}, 95% CI over examples and seeds)",
        "",
        *_corpus_metric_note(comparison),
        "| row | seeds | " + " | ".join(task_label(comparison, task) for task in tasks) + " | **mean** |",
        "|---" * (len(tasks) + 3) + "|",
    ]
    for label, row in comparison["table"].items():
        cells = [_points(row["tasks"][task]) for task in tasks]
        seeds = ",".join(map(str, row["seeds"])) or "-"
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + f" | **{_points(row['mean'])}** |")
    return lines + [
        "",
        f"Examples per task: {comparison['examples_per_task']}; seeds: {comparison['seeds']}"
        + (f"; not yet run: {', '.join(comparison['pending'])}." if comparison["pending"] else "."),
    ]


def _paired_test_lines(comparison: dict[str, Any]) -> list[str]:
    paired = comparison["paired"]
    lines = [
        f"## Paired tests (difference in mean {metric_phrase(comparison)}, points, paired bootstrap)",
        "",
        f"p is each test's own; Holm p is adjusted for the {paired['family_size']} distinct tests of this "
        "comparison (Holm's step-down; a pair listed both ways, A - B and B - A, is one test with one Holm p), "
        "and 'after Holm' is whether it stays below 0.05.",
        "",
        "| comparison | difference [95% CI] | p | significant | Holm p | after Holm |",
        "|---|---|---|---|---|---|",
    ]
    for tests, other in paired_test_groups(paired):
        for label, test in tests.items():
            low, high = (100 * v for v in test["ci95"])
            lines.append(
                f"| {label} - {other} | {100 * test['value']:+.2f} [{low:+.2f}, {high:+.2f}] | "
                f"{test['p_value']:.3f} | {'yes' if test['significant'] else 'no'} | "
                f"{test['p_holm']:.3f} | {'yes' if test['significant_holm'] else 'no'} |"
            )
    return lines


def _budget_phrase(comparison: dict[str, Any]) -> str:
    """How the rows' sizes were set: matched to the budget row's count, naming any row left more than
    10% away (e.g. one kept as written on purpose), or each as written (``compare.match_budget: false``;
    a comparison written before the key existed was matched)."""
    if not comparison.get("match_budget", True):
        return "each method trained as written (parameter budgets not matched)"
    outside = [
        f"{label}, {plan['relative_gap']:+.0%}"
        for label, plan in comparison.get("parameters", {}).items()
        if not plan.get("within_10_percent", True)
    ]
    exceptions = f" (except {'; '.join(outside)}: outside 10%)" if outside else ""
    return f"with parameter budgets matched to {comparison['budget']}{exceptions}"


def _parameter_lines(comparison: dict[str, Any]) -> list[str]:
    lines = [
        f"## Trainable parameters ({_budget_phrase(comparison)})",
        "",
        "| row | as written | as trained | budget | gap | within 10% | matched by |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, plan in comparison["parameters"].items():
        lines.append(
            f"| {label} | {plan['requested']:,} | {plan['matched']:,} | {plan['budget']:,} | "
            f"{plan['relative_gap']:+.1%} | {'yes' if plan['within_10_percent'] else 'NO'} | "
            f"{plan['matched_by'] or ('budget' if plan['budget_source'] else 'as written')} |"
        )
    return lines


def _cell_lines(cells_by_row: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "## Cells (wall time)",
        "",
        "| row | cell | seed | trainable | steps | train loss | train s | eval s | total s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, cells in cells_by_row.items():
        for cell in cells:
            lines.append(
                f"| {label} | {cell['cell']} | {cell.get('seed', '-')} | {cell.get('trainable_parameters', '-')} "
                f"| {cell.get('steps', '-')} | {_number(cell.get('train_loss'))} | "
                f"{_number(cell.get('train_wall_s'))} | {_number(cell.get('eval_wall_s'))} | "
                f"{cell['wall_s']:.1f} |"
            )
    return lines


def _seed_counts(table: dict[str, Any]) -> str:
    """How many seeds the adapter rows hold: ``3``, or ``2-3`` for a grid run in part."""
    counts = sorted({len(row["seeds"]) for row in table.values() if row["seeds"]})
    return "-".join(map(str, sorted({counts[0], counts[-1]}))) if counts else "0"


def _points(interval: dict[str, Any], signed: bool = False) -> str:
    """``41.2 +- 2.4``: the value and half the 95% interval's width, in points."""
    half = 50 * (interval["ci95"][1] - interval["ci95"][0])
    return f"{100 * interval['value']:{'+' if signed else ''}.1f} +- {half:.1f}"


def _verdict(test: dict[str, Any], family_size: int) -> str:
    if test["significant_holm"]:
        return f"significant (p < 0.05 after Holm's correction for {family_size} distinct tests)"
    if test["significant"]:
        return f"p < 0.05 uncorrected only, not after Holm's correction for {family_size} distinct tests"
    return "not significant at this scale"


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def unit(comparison: dict[str, Any]) -> str:
    """``%`` for a grid scored by accuracy alone, else ``x100`` (MCC and text scores are not shares)."""
    return "%" if metric_phrase(comparison) == comparison["metric"] else "x100"


def task_label(comparison: dict[str, Any], task: str) -> str:
    """A task's column name: ``cola (mcc)`` where it is scored by another metric than the grid's."""
    metric = comparison.get("task_metrics", {}).get(task, comparison["metric"])
    return task if metric == comparison["metric"] else f"{task} ({metric})"


def _corpus_metric_note(comparison: dict[str, Any]) -> list[str]:
    """What an MCC or F1 column means, where a task is scored by one."""
    scored = sorted(set(comparison.get("corpus_metrics", {}).values()))
    return [" ".join(CORPUS_NOTES[name] for name in scored), ""] if scored else []


def metric_phrase(comparison: dict[str, Any]) -> str:
    """``acc``, or for a grid whose generated tasks are scored by another metric
    ``score (acc; exact_match for sciq_answer)``."""
    metric = comparison["metric"]
    others: dict[str, list[str]] = {}
    for task, name in comparison.get("task_metrics", {}).items():
        if name != metric:
            others.setdefault(name, []).append(task)
    if not others:
        return metric
    return f"score ({metric}; " + "; ".join(f"{name} for {', '.join(tasks)}" for name, tasks in others.items()) + ")"


def _template_phrase(template: str | None) -> str:
    """The template named in backticks, or what a run without one used: each task's own prompts."""
    return f"`{template}`" if template else "each task's own prompts (its YAML or the built-in default)"
