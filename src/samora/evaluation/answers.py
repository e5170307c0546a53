"""Answer extraction for the generate protocol: which choice a generated text names.

LLM-Adapters takes the first match of any answer label in the generated text
(``re.findall("answer1|answer2|...")[0]``). ``lenient`` adds MTL-LoRA's fallback: with no label in
the text, the first bare digit 1..n counts as choice n (MTL-LoRA applied it to the answer1..N tasks;
here it applies to every numbered label family). No match at all is ``-1`` (:data:`UNPARSED`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

UNPARSED = -1


def extract_answer(
    text: str, labels: Sequence[str], *, ignore_case: bool = False, whole_words: bool = False, lenient: bool = False
) -> int:
    """Index of the first answer label found in ``text``, or ``-1`` (see module docstring)."""
    alternatives = "|".join(re.escape(label) for label in sorted(set(labels), key=len, reverse=True))
    pattern = rf"\b(?:{alternatives})\b" if whole_words else alternatives
    flags = re.IGNORECASE if ignore_case else 0
    match = re.search(pattern, text, flags)
    if match:
        found = match.group(0).lower() if ignore_case else match.group(0)
        return [label.lower() if ignore_case else label for label in labels].index(found)
    numbered = all(re.search(r"\d$", label) for label in labels)
    if lenient and numbered:
        digit = re.search(f"[1-{min(len(labels), 9)}]", text)
        if digit:
            return int(digit.group(0)) - 1
    return UNPARSED
