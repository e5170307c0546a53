"""Deprecated alias of :mod:`samora.run.cli` (the harness moved to ``samora.run``); removed in the next release.

``python -m samora.cli ARGS`` still runs the ``samora`` command, with a FutureWarning: use
``python -m samora ARGS`` (or the ``samora`` command) instead.
"""

import warnings

from samora.run.cli import main

warnings.warn(
    "samora.cli moved to samora.run.cli; run `python -m samora` or the `samora` command instead",
    FutureWarning,  # shown by default: the users of the old name are end users
    stacklevel=2,
)

if __name__ == "__main__":
    raise SystemExit(main())
