"""No committed file holds an absolute path of the machine it was made on, and samora writes none where a
relative path or a name would do: a run folder's config.yaml keeps output_dir as given and names the
command that made it; results name the bundled SmolLM2 by its alias, not by this machine's cache path."""

from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import torch
import yaml

from samora.cache import SMOLLM2_NAME
from samora.evaluation.suite import model_identity
from samora.run.pipeline import save_config
from samora.run.sections import RunConfig
from tests.helpers import ROOT

MACHINE_PATH = re.compile(r"/work/|/root/|/home/|/tmp/|/Users/")
# tests that write a fake machine path on purpose, to check that samora handles one
FAKE_PATHS_ON_PURPOSE = {
    "tests/test_base_model_and_modes.py",
    "tests/run/test_passthrough.py",
    "tests/test_committed_paths.py",
}


def test_no_committed_file_holds_a_machine_path():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [name for name in listed.decode().split("\0") if name]
    found = []
    for name in paths:
        file = ROOT / name
        if name in FAKE_PATHS_ON_PURPOSE or not file.is_file():
            continue
        text = file.read_bytes().decode("utf-8", errors="ignore")
        found += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}" for m in MACHINE_PATH.finditer(text)]
    assert len(paths) > 100, "git ls-files listed too few files to be this repository"
    assert not found, (
        f"committed files hold absolute paths of the machine they were made on: {found[:10]}; record paths "
        "relative to the repository (or the run folder) and models by name (smollm2-135m-instruct)"
    )


def test_a_run_folder_config_keeps_output_dir_as_given_and_names_its_command(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/samora", "train", "output_dir=runs/mine"])
    save_config(RunConfig(output_dir="runs/mine"), tmp_path)
    text = (tmp_path / "config.yaml").read_text()
    assert text.splitlines()[0] == "# made by: samora train output_dir=runs/mine"
    assert yaml.safe_load(text)["output_dir"] == "runs/mine"


def test_results_name_the_bundled_model_by_its_alias():
    converted = f"/some/cache/samora/{SMOLLM2_NAME}-transformers-5.23.0"
    model = torch.nn.Linear(2, 2)
    model.config = SimpleNamespace(_name_or_path=converted, model_type="llama")
    assert model_identity(model)["name_or_path"] == SMOLLM2_NAME
    model.config._name_or_path = "my-models/base"  # a user's path is theirs: kept as given
    assert model_identity(model)["name_or_path"] == "my-models/base"
