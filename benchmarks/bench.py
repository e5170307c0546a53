"""Run the samora performance benchmark (the same as ``samora bench``); see benchmarks/README.md.

python benchmarks/bench.py                      # all methods vs PEFT LoRA on SmolLM2-135M
python benchmarks/bench.py --sweep all          # ... plus the scaling sweeps
python benchmarks/bench.py --model tiny --rounds 2 --output runs/bench-smoke   # seconds
"""

import sys

from samora.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
