"""The adapter library works where only its own dependencies are installed (``pip install samora``:
torch, transformers, safetensors), without the harness's extras (``samora[cli]``: datasets, accelerate,
matplotlib; its pyyaml, tqdm and numpy come with transformers anyway).

The extras are blocked in a fresh interpreter the way Python itself marks a module absent
(``sys.modules[name] = None``: ``import name`` raises ImportError and ``importlib.util.find_spec`` answers
None, so transformers sees them as not installed), then the public API adapts a tiny model, trains one
step, saves and loads the adapter.
"""

from __future__ import annotations

import subprocess
import sys

import tomllib

from tests.helpers import ROOT, subprocess_environment

# what the cli extra adds to what transformers itself requires
HARNESS_EXTRAS = ("datasets", "accelerate", "matplotlib")

LIBRARY_ROUND_TRIP = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
import tempfile, torch, samora
from transformers import LlamaConfig, LlamaForCausalLM

def base():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2))

model = samora.get_model(base(), samora.SAMoRAConfig(r=4, num_experts=2, tasks=["a", "b"]))
ids = torch.randint(0, 64, (2, 8))
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
model(input_ids=ids, labels=ids, task_ids=["a", "b"]).loss.backward()
optimizer.step()
model.samora_adapter.after_optimizer_step()
model.eval()
with torch.no_grad():
    expected = model(input_ids=ids, task_ids=["a", "b"]).logits
with tempfile.TemporaryDirectory() as folder:
    samora.save_adapter(model, folder)
    loaded = samora.load_adapter(base(), folder).eval()
with torch.no_grad():
    assert torch.equal(loaded(input_ids=ids, task_ids=["a", "b"]).logits, expected)
leaked = sorted(name for name in sys.modules if name.split(".")[0] in {blocked!r} and sys.modules[name] is not None)
assert not leaked, leaked
print("round trip ok")
"""


def test_library_round_trips_an_adapter_without_the_harness_extras():
    result = subprocess.run(
        [sys.executable, "-c", LIBRARY_ROUND_TRIP.format(blocked=HARNESS_EXTRAS)],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round trip ok" in result.stdout


def test_the_harness_dependencies_come_only_with_the_cli_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {dependency.split(">")[0].split("=")[0].strip() for dependency in project["dependencies"]}
    assert required == {"torch", "transformers", "safetensors"}
    in_cli_extra = " ".join(project["optional-dependencies"]["cli"])
    for package in ("datasets", "accelerate", "matplotlib", "pyyaml", "tqdm", "numpy"):
        assert package in in_cli_extra, package
