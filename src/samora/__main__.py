"""``python -m samora ...``: the ``samora`` command (:mod:`samora.run.cli`), e.g. under ``accelerate launch -m``."""

from samora.run.cli import main

raise SystemExit(main())
