"""Documents to examples with lm-evaluation-harness's task-YAML semantics (``doc_to_text``,
``doc_to_choice``, ``doc_to_target``), rendered by Jinja exactly as lm-eval's ``ConfigurableTask``
does: the environment of ``lm_eval.utils`` (``StrictUndefined``, trailing newlines kept, the
``regex_replace`` filter), and for each key

- a string that names a column of the documents: that column's value;
- else a Jinja template rendered over the document's fields;
- ``doc_to_choice``: a rendered string is read as a Python list literal (``"{{choices}}"``); a YAML
  list is a list of templates; a mapping is its values;
- ``doc_to_target``: an int is the gold index; a rendered string of digits is an index into the
  choices (for multiple-choice tasks); a rendered ``[...]`` is a list literal; a string among the
  choices is that choice's index.

The example a document becomes (the columns of :func:`samora.data.load_examples`):
``multiple_choice``: ``prompt = description + doc_to_text``, ``choices = [target_delimiter + c]``
(what lm-eval scores), ``choice_prompts = [prompt] * len(choices)``, ``gold`` the index,
``target = choices[gold]``; ``generate_until``: ``choices = choice_prompts = []``, ``gold = -1``,
``target`` the rendered gold text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    """lm-eval's ``regex_replace`` Jinja filter: :func:`re.sub`."""
    return re.sub(pattern, repl, string, count=count)


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.BaseLoader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)
_ENVIRONMENT.filters["regex_replace"] = _regex_replace


class RenderError(ValueError):
    """A document that a key of the task cannot render (``key`` names it; the message says why)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check_template(key: str, value: Any) -> None:
    """A :class:`RenderError` when a template string of ``key`` is not valid Jinja."""
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str):
            try:
                _ENVIRONMENT.parse(text)
            except jinja2.TemplateSyntaxError as err:
                raise RenderError(key, f"not valid Jinja ({err.message}, line {err.lineno}): {text!r}") from None


@dataclass(frozen=True)
class DocTemplate:
    """One task's ``doc_to_*`` values, as written in its YAML."""

    doc_to_text: Any
    doc_to_target: Any
    doc_to_choice: Any = None
    description: str = ""
    target_delimiter: str = " "
    output_type: str = "multiple_choice"

    def example(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The example columns of one document (see the module docstring)."""
        prompt = self.description + str(self._text(doc))
        if self.output_type != "multiple_choice":
            target = self._target(doc)
            if isinstance(target, list):
                target = target[0] if target else ""
            return {"prompt": prompt, "choices": [], "choice_prompts": [], "gold": -1, "target": str(target)}
        choices = [str(choice) for choice in self._choices(doc)]
        gold = self._gold(doc, choices)
        continuations = [self.target_delimiter + choice for choice in choices]
        return {
            "prompt": prompt,
            "choices": continuations,
            "choice_prompts": [prompt] * len(choices),
            "gold": gold,
            "target": continuations[gold],
        }

    def _text(self, doc: Mapping[str, Any]) -> Any:
        if isinstance(self.doc_to_text, int):
            return self.doc_to_text
        if _is_column(self.doc_to_text, doc):
            return doc[self.doc_to_text]
        return _render("doc_to_text", self.doc_to_text, doc)

    def _choices(self, doc: Mapping[str, Any]) -> list:
        value = self.doc_to_choice
        if isinstance(value, Mapping):
            return list(value.values())
        if isinstance(value, list):
            return [_render("doc_to_choice", choice, doc) for choice in value]
        if _is_column(value, doc):
            choices = doc[value]
        else:
            choices = _literal("doc_to_choice", _render("doc_to_choice", value, doc))
        if not isinstance(choices, (list, tuple)) or not choices:
            raise RenderError("doc_to_choice", f"must give a non-empty list of choices, got {choices!r}")
        return list(choices)

    def _target(self, doc: Mapping[str, Any]) -> Any:
        value = self.doc_to_target
        if isinstance(value, (int, list)):
            return value
        if _is_column(value, doc):
            return doc[value]
        text = _render("doc_to_target", value, doc)
        if text.isdigit() and self.doc_to_choice is not None:
            return int(text)
        if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
            try:
                return ast.literal_eval(text)
            except (SyntaxError, ValueError):
                return text
        return text

    def _gold(self, doc: Mapping[str, Any], choices: list[str]) -> int:
        target = self._target(doc)
        if isinstance(target, list):
            target = target[0] if target else None
        if isinstance(target, str) and not target.isdigit():
            if target not in choices:
                raise RenderError("doc_to_target", f"target {target!r} is not one of the choices {choices}")
            return choices.index(target)
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            raise RenderError("doc_to_target", f"must give a choice index or a choice's text, got {target!r}")
        index = int(target)
        if not 0 <= index < len(choices):
            raise RenderError("doc_to_target", f"target index {index} is outside the {len(choices)} choices {choices}")
        return index


def _is_column(value: Any, doc: Mapping[str, Any]) -> bool:
    return isinstance(value, str) and value in doc


def _render(key: str, template: Any, doc: Mapping[str, Any]) -> str:
    if not isinstance(template, str):
        raise RenderError(key, f"must be a column name or a Jinja template string, got {template!r}")
    try:
        return _ENVIRONMENT.from_string(template).render(**doc)
    except jinja2.UndefinedError as err:
        raise RenderError(key, f"{err.message} (the row's fields are {sorted(doc)})") from None
    except jinja2.TemplateError as err:
        raise RenderError(key, f"Jinja error: {err}") from None


def _literal(key: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (SyntaxError, ValueError):
        raise RenderError(key, f"rendered {text!r}, which is not a Python list literal of choices") from None
