"""The ``samora`` command."""

from __future__ import annotations

import argparse
import sys
import time


def command_env(args: argparse.Namespace) -> int:
    """Print versions and devices, for bug reports."""
    import platform

    import torch

    import samora

    lines = {"samora": samora.__version__, "python": platform.python_version(), "platform": platform.platform(),
             "torch": torch.__version__, "cuda available": torch.cuda.is_available(),
             "cpu threads": torch.get_num_threads()}
    for package in ("transformers", "accelerate", "datasets", "safetensors", "peft"):
        try:
            module = __import__(package)
            lines[package] = module.__version__
        except ImportError:
            lines[package] = "not installed"
    if torch.cuda.is_available():
        lines["devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    lines["methods"] = ", ".join(sorted(samora.METHODS))
    for key, value in lines.items():
        print(f"{key:>16}: {value}")
    return 0


def command_demo(args: argparse.Namespace) -> int:
    """Adapt SmolLM2-135M with SAMoRA, train a few mixed-task steps, save, reload, compare."""
    import tempfile

    import torch

    import samora
    from samora.models import load_smollm2

    torch.manual_seed(0)
    model, tokenizer = load_smollm2()
    tasks = ["boolq", "piqa", "arc_easy"]
    examples = [("Is water wet? Answer true or false.", "the correct answer is true", "boolq"),
                ("To open a jar, should you twist the lid or hit it? solution1: twist solution2: hit",
                 "the correct answer is solution1", "piqa"),
                ("Which planet is closest to the sun? answer1: Venus answer2: Mercury",
                 "the correct answer is answer2", "arc_easy")]
    texts = [f"{prompt}\n{answer}{tokenizer.eos_token}" for prompt, answer, _ in examples]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    task_ids = [task for _, _, task in examples]
    model = samora.get_model(model, samora.SAMoRAConfig(tasks=tasks))
    print(samora.trainable_parameters(model))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for step in range(args.steps):
        start = time.perf_counter()
        model(**batch, labels=labels, task_ids=task_ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        terms = {k: f"{float(v):.4f}" for k, v in model.samora_adapter.last_losses.items()}
        print(f"step {step + 1}/{args.steps}  {terms}  {time.perf_counter() - start:.2f}s")
    model.eval()
    with torch.no_grad():
        logits = model(**batch, task_ids=task_ids).logits
    folder = args.output or tempfile.mkdtemp(prefix="samora-demo-")
    samora.save_adapter(model, folder)
    samora.unload(model)
    reloaded = samora.load_adapter(model, folder)
    with torch.no_grad():
        same = torch.equal(reloaded(**batch, task_ids=task_ids).logits, logits)
    print(f"saved adapter to {folder}; reloaded logits identical: {same}")
    return 0 if same else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samora", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("env", help="versions and devices, for bug reports").set_defaults(run=command_env)
    demo = commands.add_parser("demo", help="a 1-minute smoke run on the real SmolLM2-135M")
    demo.add_argument("--steps", type=int, default=5)
    demo.add_argument("--output", help="adapter folder (default: a new temporary folder)")
    demo.set_defaults(run=command_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
