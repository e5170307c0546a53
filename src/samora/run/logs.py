"""What the ``samora`` command shows while it works, and the warnings a run repeats in its report.

Library modules log to ``logging.getLogger(__name__)``, children of the ``samora`` logger; as a
library samora configures nothing (Python's default: warnings only, progress bars on). The CLI calls
:func:`configure_cli_logging`: ``[samora] message`` lines at INFO on stderr (``[samora] warning: ...``
for warnings), and the progress bars of datasets, transformers, the hub and samora's evaluation
off; ``--verbose`` turns the bars (and the Trainer's own bar) back on and shows DEBUG messages.
Results (tables) are printed on stdout.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LOGGER = "samora"


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        return "\n".join(f"[samora] {line}" for line in message.splitlines())


class _CliHandler(logging.StreamHandler):
    """The handler :func:`configure_cli_logging` installs (replaced, not duplicated, on a second call)."""


def configure_cli_logging(verbose: bool = False, progress_bars: bool = True) -> None:
    """``[samora] ...`` on stderr at INFO (DEBUG with ``verbose``); progress bars only with ``verbose``
    (``progress_bars=False``: leave them for :func:`set_progress_bars`, which imports transformers and
    datasets, so that the CLI can check a configuration first)."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(handler)
    handler = _CliHandler(sys.stderr)
    handler.setFormatter(_CliFormatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if progress_bars:
        set_progress_bars(verbose)


def set_progress_bars(enabled: bool) -> None:
    """Turn the progress bars of datasets, transformers (model loading, the Trainer), huggingface_hub
    and samora's evaluation (which follows transformers' switch) on or off, with their own switches."""
    import datasets
    import huggingface_hub.utils
    from transformers.utils import logging as transformers_logging

    if enabled:
        datasets.enable_progress_bars()
        transformers_logging.enable_progress_bar()
        huggingface_hub.utils.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
        transformers_logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()


def progress_bars_enabled() -> bool:
    """Whether to show progress bars: transformers' switch (on unless someone, e.g. the CLI, turned it off)."""
    from transformers.utils import logging as transformers_logging

    return transformers_logging.is_progress_bar_enabled()


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """The messages of the warnings logged under the ``samora`` logger inside the block (a live list)."""
    recorder = _Recorder()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(recorder)
    try:
        yield recorder.messages
    finally:
        logger.removeHandler(recorder)
