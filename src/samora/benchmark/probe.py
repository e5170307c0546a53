"""Entry point of one memory measurement: ``python -m samora.benchmark.probe '<request json>'``.

Kept apart from :mod:`samora.benchmark.memory` so that running it never re-imports a loaded module.
"""

import json
import sys

from samora.benchmark.memory import measure_in_this_process

if __name__ == "__main__":
    print(json.dumps(measure_in_this_process(json.loads(sys.argv[1]))))
