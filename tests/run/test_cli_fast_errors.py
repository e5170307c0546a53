"""A configuration error prints before torch is imported (issue #24, defect 8): the CLI checks what needs
no library first (keys, types and declared rules, the adapter keys every method shares, task names,
``TrainingArguments`` keys and scheduler names read from transformers' source), so such an error takes a
fraction of a second instead of the seconds torch, ``datasets`` and the Trainer take to import."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import subprocess_environment

# (overrides, what the error says): each refused before torch, transformers or datasets is imported
CASES = [
    (["train.learning_rate=-1"], "train.learning_rate must be >= 0, got -1.0"),
    (["train.max_steps=three"], "train.max_steps must be an int > 0 or null, got 'three'"),
    (["train.seed=-1"], "train.seed must be an int in [0, 4294967296), got -1"),
    (["eval.limit=-1"], "eval.limit must be an int > 0 or null, got -1"),
    (["data.max_length=0"], "data.max_length must be an int > 0, got 0"),
    (["data.sampling=temperature"], "data.temperature must be set"),
    (["model.dtype=fp32"], "model.dtype must be one of"),
    (["bogus=1"], "unknown key(s) ['bogus']"),
    (["train=5"], "train must be a mapping"),
    (["output_dir="], "output_dir must be a string, got None"),
    (["train.max_steps"], "unexpected argument 'train.max_steps'"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    # issue #24's slow ones: a task typo (the task registry), an unknown train key (TrainingArguments'
    # fields), an uncommon scheduler (transformers' SchedulerType), a shared adapter field (the registry)
    (["data.tasks=[arc_eazy]"], "data.tasks: Unknown task 'arc_eazy'"),
    (["train.learning_rat=1e-3"], "unknown key(s) ['train.learning_rat'] (did you mean train.learning_rate?)"),
    (["train.lr_scheduler_type=bogus"], "train.lr_scheduler_type must be one of 'linear', 'cosine'"),
    (["adapter.r=0"], "adapter.r must be a positive int, got 0"),
    (["adapter.dropout=1.5"], "adapter.dropout must be in [0, 1), got 1.5"),
]
HEAVY = ("torch", "transformers", "datasets")
CHECK_EACH = """
import contextlib, io, json, sys
from samora.cli import main
seen = []
for args in json.loads(sys.argv[1]):
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["train", *args])
    seen.append([code, err.getvalue(), [name for name in HEAVY if name in sys.modules]])
print(json.dumps(seen))
"""


def test_configuration_errors_come_before_torch_datasets_or_the_trainer_is_imported(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{CHECK_EACH}", json.dumps([args for args, _ in CASES])],
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    for (args, message), (code, error, imported) in zip(CASES, results, strict=True):
        assert code == 2 and f"configuration error: {message}" in error, (args, error)
        assert imported == [], (args, imported)
