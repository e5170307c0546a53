"""lm-evaluation-harness's ``filter_list``: how a generated text becomes the answer that is scored.

A ``generate_until`` task's ``filter_list`` holds named pipelines, each a list of filter steps in
lm-eval's task-YAML vocabulary::

    filter_list:
      - name: strict-match
        filter:
          - function: regex
            regex_pattern: "#### (\\-?[0-9\\.\\,]+)"
          - function: take_first

Every pipeline is applied to each response on its own and yields one answer, scored under the
pipeline's name. Without a ``filter_list`` there is one pipeline, ``none``, that takes the
response as it is (lm-eval's default ``take_first``). The steps are lm-eval's own filter classes
(``regex``: ``re.findall(pattern)``, the match number ``group_select`` of it, the first non-empty
group of a match with groups, stripped, else ``fallback`` = ``"[invalid]"``; ``take_first``;
``lowercase``; ``uppercase``; ``remove_whitespace``; ``map``; ...): a task with a ``filter_list``
needs lm-eval installed (``pip install samora[lm-eval]``) and is refused without it, so that a
filter never means something else in samora than in lm-eval. A pipeline that does not end in
``take_first`` leaves a one-element list per response; its element is the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NO_FILTER = "none"


class FilterError(ValueError):
    """A ``filter_list`` that cannot be applied (malformed, unknown step, lm-eval missing)."""


def apply_filters(
    filter_list: Sequence[Mapping[str, Any]], response: str, doc: Mapping | None = None
) -> dict[str, str]:
    """``{pipeline name: answer}`` of one response (see the module docstring)."""
    return filter_responses(filter_list, [response], [doc or {}])[0]


def filter_responses(
    filter_list: Sequence[Mapping[str, Any]], responses: Sequence[str], docs: Sequence[Mapping] | None = None
) -> list[dict[str, str]]:
    """``{pipeline name: answer}`` per response; ``docs`` (the rows, for lm-eval filters that read
    them) default to empty ones."""
    docs = list(docs) if docs is not None else [{} for _ in responses]
    if not filter_list:
        return [{NO_FILTER: response} for response in responses]
    answers: list[dict[str, str]] = [{} for _ in responses]
    for name, steps in _pipelines(filter_list):
        filtered: Any = [[response] for response in responses]
        for step in steps:
            filtered = step().apply(filtered, docs)
        for answer, value in zip(answers, list(filtered), strict=True):
            answer[name] = _as_text(value)
    return answers


def filter_names(filter_list: Sequence[Mapping[str, Any]]) -> list[str]:
    """The pipelines' names in order (``["none"]`` without a ``filter_list``)."""
    return [entry.get("name") for entry in filter_list] if filter_list else [NO_FILTER]


def _pipelines(filter_list: Sequence[Mapping[str, Any]]) -> list[tuple[str, list]]:
    """Each entry's name and its steps as lm-eval filter factories (``partial(Filter, **kwargs)``)."""
    try:
        from lm_eval.filters import build_filter_ensemble
    except ImportError as err:
        raise FilterError(
            f"This task's filter_list ({', '.join(map(str, filter_names(filter_list)))}) is applied with "
            "lm-evaluation-harness's filters, which are not installed; install them with "
            "`pip install samora[lm-eval]`, or remove the filter_list to score the whole response."
        ) from err
    pipelines = []
    for index, entry in enumerate(filter_list):
        name, steps = _checked_entry(index, entry)
        components = [(step["function"], {k: v for k, v in step.items() if k != "function"}) for step in steps]
        try:
            pipelines.append((name, build_filter_ensemble(name, components).filters))
        except KeyError as err:
            raise FilterError(f"filter_list entry {name!r}: {err.args[0]}") from err
    return pipelines


def _checked_entry(index: int, entry: Any) -> tuple[str, list[Mapping[str, Any]]]:
    """``(name, steps)`` of one ``filter_list`` entry, or a :class:`FilterError` saying what is wrong."""
    expected = "expected {name: ..., filter: [{function: ..., ...}, ...]}"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or "filter" not in entry:
        raise FilterError(f"filter_list entry {index} is {entry!r}; {expected}")
    steps = entry["filter"]
    if not isinstance(steps, list) or not steps or not all(isinstance(s, Mapping) and "function" in s for s in steps):
        raise FilterError(f"filter_list entry {entry['name']!r} has filter {steps!r}; {expected}")
    return entry["name"], steps


def _as_text(value: Any) -> str:
    """A pipeline's output for one response as the answer text."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return value if isinstance(value, str) else str(value)
