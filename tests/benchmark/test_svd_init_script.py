"""benchmarks/svd_init.py at a tiny size: it runs, and reports the error it measures."""

from __future__ import annotations

import importlib.util

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "svd_init.py"


def test_svd_init_benchmark_runs_at_tiny_size(capsys):
    spec = importlib.util.spec_from_file_location("svd_init", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--shapes", "48x40,40x64", "--ks", "4,8", "--repeats", "1"])
    assert [(row["shape"], row["k"]) for row in rows] == [((48, 40), 4), ((48, 40), 8), ((40, 64), 4), ((40, 64), 8)]
    assert all(row["error"] < 1e-4 and row["time_s"] > 0 and row["exact_time_s"] > 0 for row in rows)
    assert "| Gaussian 48x40 | 4 |" in capsys.readouterr().out
