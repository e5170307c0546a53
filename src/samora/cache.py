"""Where samora keeps what it builds once and reuses: the converted offline model, rendered data."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$SAMORA_CACHE``, else ``$XDG_CACHE_HOME/samora``, else ``~/.cache/samora``."""
    if os.environ.get("SAMORA_CACHE"):
        return Path(os.environ["SAMORA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "samora"
