"""``samora compare``: a grid of methods x seeds trained and evaluated alike, with paired tests.

>>> from samora.run.run_config import load_run_config
>>> from samora.compare import run_compare
>>> comparison = run_compare(load_run_config(preset="demo"))   # runs/demo/comparison.md
"""

from samora.compare.grid import run_compare
from samora.compare.spec import MethodSpec, parse_method_spec

__all__ = ["MethodSpec", "parse_method_spec", "run_compare"]
