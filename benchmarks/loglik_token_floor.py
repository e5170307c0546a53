"""How many tokens lm-eval's HF backend and samora's scorers forward on the speed benchmark's examples.

The speed benchmark (`loglik_vs_lm_eval.py`) times samora's shared-prompt scorer against
lm-evaluation-harness 0.4.13's HF backend on the first 100 ARC-Easy evaluation examples. At equal
cost per token, the ratio of the tokens the two forward is the most a speed-up can be; this script
counts them, deterministically (no timing):

- samora (shared and plain path): the real scorer, `loglik_scores`, runs on a random 1-layer Llama
  with SmolLM2's tokenizer and vocabulary, and a forward pre-hook on the model adds up the
  `input_ids` of every forward: `real` = the tokens that are not padding, `padded` = every position.
- lm-eval: counted from its rules (`lm_eval.models.huggingface.HFLM._loglikelihood_tokens`): the
  context's trailing whitespace moves into the continuation (`context.rstrip()`); each request runs
  `(context + continuation)[:-1]`, except that requests whose `context + continuation[:-1]` are
  equal run once (its one-token-continuation logits cache, on for causal models); requests are
  sorted by length, longest first, and a batch is padded to its longest row.

    PYTHONPATH=src python benchmarks/loglik_token_floor.py --examples 100 --batch-size 8 \
        --output benchmarks/results/loglik_vs_lm_eval/token_floor.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from samora.data import load_examples
from samora.evaluation.scoring import loglik_scores
from samora.models.smollm2 import load_smollm2

TEMPLATES = ("commonsense_170k", "harness")
MEASURED = Path(__file__).parent / "results" / "loglik_vs_lm_eval" / "loglik_vs_lm_eval.json"


def counting_model(vocabulary: int, pad: int) -> tuple[torch.nn.Module, dict[str, int]]:
    """A random 1-layer Llama whose forwards add their input tokens to the returned counter."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocabulary,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        pad_token_id=pad,
    )
    model = LlamaForCausalLM(config).eval()
    counter = {"real": 0, "padded": 0}

    def count(_, args, kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        counter["padded"] += input_ids.numel()
        counter["real"] += int((input_ids != pad).sum())
        return None

    model.register_forward_pre_hook(count, with_kwargs=True)
    return model, counter


def samora_tokens(model, counter, tokenizer, examples, *, share: bool, batch_size: int) -> dict[str, int]:
    contexts = [p for prompts in examples["choice_prompts"] for p in prompts]
    continuations = [c for choices in examples["choices"] for c in choices]
    counter.update(real=0, padded=0)
    with torch.no_grad():
        loglik_scores(
            model, tokenizer, contexts, continuations, batch_size=batch_size, share_prompts=share, progress=False
        )
    return dict(counter)


def lm_eval_tokens(tokenizer, examples, *, batch_size: int) -> dict[str, int]:
    """The tokens lm-eval's HF backend forwards for these examples (see the module docstring)."""
    rows = {}
    for prompt, choices in zip(examples["prompt"], examples["choices"]):
        context = prompt.rstrip()
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        for choice in choices:
            whole = tokenizer(context + prompt[len(context) :] + choice, add_special_tokens=False)["input_ids"]
            continuation = whole[len(context_ids) :]
            rows[tuple(context_ids + continuation[:-1])] = None  # equal inputs run once
    lengths = sorted((len(row) for row in rows), reverse=True)
    padded = sum(
        max(lengths[i : i + batch_size]) * len(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size)
    )
    return {"real": sum(lengths), "padded": padded}


def measured_speedups() -> dict[str, str]:
    if not MEASURED.is_file():
        return {}
    templates = json.loads(MEASURED.read_text())["templates"]
    return {
        template: "{median:.2f} [{min:.2f}-{max:.2f}]".format(**entry["speedup_vs_lm_eval"])
        for template, entry in templates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    _, tokenizer = load_smollm2()
    model, counter = counting_model(len(tokenizer), tokenizer.pad_token_id or tokenizer.eos_token_id)
    measured = measured_speedups()
    lines = [
        f"# Tokens forwarded: lm-eval 0.4.13 HF backend vs samora, first {args.examples} ARC-Easy "
        f"examples, batch size {args.batch_size}",
        "",
        "| template | lm-eval real (padded) | samora shared real (padded) | samora plain real (padded) | "
        "lm-eval / shared, real (padded) | measured speed-up vs lm-eval |",
        "|---|---|---|---|---|---|",
    ]
    for template in TEMPLATES:
        examples = load_examples("arc_easy", "eval", limit=args.examples, template=template)
        lm_eval = lm_eval_tokens(tokenizer, examples, batch_size=args.batch_size)
        shared = samora_tokens(model, counter, tokenizer, examples, share=True, batch_size=args.batch_size)
        plain = samora_tokens(model, counter, tokenizer, examples, share=False, batch_size=args.batch_size)
        lines.append(
            f"| {template} | {lm_eval['real']:,} ({lm_eval['padded']:,}) | {shared['real']:,} "
            f"({shared['padded']:,}) | {plain['real']:,} ({plain['padded']:,}) | "
            f"{lm_eval['real'] / shared['real']:.2f} ({lm_eval['padded'] / shared['padded']:.2f}) | "
            f"{measured.get(template, '-')} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
