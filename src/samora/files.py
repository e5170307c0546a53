"""Files and folders samora writes get the modes the user's umask gives, as ``open`` and ``mkdir`` do.

safetensors' ``save_file`` writes 0o600 and ``tempfile.mkdtemp`` creates 0o700; :func:`match_umask`
sets what a plain ``open`` / ``mkdir`` would have: 0o666 / 0o777 & ~umask.

Also :func:`lazy_export`, how ``samora.evaluation`` and ``samora.training`` import their public names on
first use (so the command line checks a configuration before torch loads).
"""

from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    """The process's umask (``os.umask`` reads it only by setting it: set straight back, as pip does)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def match_umask(*paths: Path) -> None:
    """Give each file mode 0o666 & ~umask and each folder 0o777 & ~umask."""
    mask = current_umask()
    for path in paths:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden sibling and a rename: a reader sees the old file or the new one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def lazy_export(package: str, exports: dict[str, str], namespace: dict, name: str):
    """PEP 562 for a package that names its public objects in ``exports`` (name -> defining module):
    ``name`` imported from its module on first use and kept in the package's ``namespace``, so later
    look-ups skip the package's ``__getattr__``; an unknown name is an AttributeError."""
    from importlib import import_module

    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = namespace[name] = getattr(import_module(module), name)
    return value
