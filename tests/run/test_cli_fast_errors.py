"""A configuration error prints before torch is imported (issue #24, defect 8): the CLI checks what needs
no library first, so such an error takes a fraction of a second instead of the 7-32 s torch and the
Trainer take to import."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import subprocess_environment

# each is refused by the checks that need no library; the adapter section (the method registry), task
# names (the data registry) and TrainingArguments keys are checked once those load
CASES = [
    ["train.learning_rate=-1"],
    ["train.max_steps=three"],
    ["train.seed=-1"],
    ["eval.limit=-1"],
    ["data.max_length=0"],
    ["data.sampling=temperature"],
    ["model.dtype=fp32"],
    ["bogus=1"],
    ["train=5"],
    ["output_dir="],
    ["train.max_steps"],
    ["--preset", "nope"],
]
CHECK_EACH = """
import json, sys
from samora.cli import main
seen = []
for args in json.loads(sys.argv[1]):
    seen.append([main(["train", *args]), "torch" in sys.modules, "transformers" in sys.modules])
print(json.dumps(seen))
"""


def test_configuration_errors_come_before_torch_is_imported(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHECK_EACH, json.dumps(CASES)],
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    assert [rc for rc, _, _ in results] == [2] * len(CASES), done.stderr
    assert not any(torch or transformers for _, torch, transformers in results), done.stderr
    assert "configuration error: train.learning_rate must be >= 0" in done.stderr
