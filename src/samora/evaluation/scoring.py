"""The two scoring protocols, one module each, and the import path they share.

- ``loglik`` (:mod:`samora.evaluation.loglik`): each choice is ranked by the summed
  log-likelihood of its tokens (lm-evaluation-harness's multiple-choice scoring; ``acc`` and the
  length-normalised ``acc_norm``, :func:`choice_length`).
- ``generate`` (LLM-Adapters / MTL-LoRA): :mod:`samora.evaluation.generation` decodes a response
  (greedy or beam search) and :mod:`samora.evaluation.answers` takes the first answer label in it
  as the prediction, with MTL-LoRA's bare-digit fallback under ``lenient``; no match is ``-1``
  (:data:`UNPARSED`).

A task whose ``output_type`` is ``generate_until`` (an own task's free-form answers) is generated
with lm-eval's ``until`` / ``max_gen_toks`` semantics by :mod:`samora.evaluation.generate_until`,
whatever the protocol, and scored by :mod:`samora.evaluation.text_scoring`.

Both batch their requests with :mod:`samora.evaluation.batching`. The names stay importable from
here (``from samora.evaluation.scoring import loglik_scores``) as from :mod:`samora.evaluation`.
"""

from samora.evaluation.answers import UNPARSED, extract_answer
from samora.evaluation.batching import context_window
from samora.evaluation.generation import generate_responses
from samora.evaluation.loglik import MIN_SHARED_HEADER, TARGET_DELIMITER, choice_length, loglik_scores

__all__ = [
    "MIN_SHARED_HEADER",
    "TARGET_DELIMITER",
    "UNPARSED",
    "choice_length",
    "context_window",
    "extract_answer",
    "generate_responses",
    "loglik_scores",
]
