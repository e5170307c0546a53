"""``python -m samora ...``: the ``samora`` command (:mod:`samora.cli`), e.g. under ``accelerate launch -m``."""

from samora.cli import main

raise SystemExit(main())
