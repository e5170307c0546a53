"""samora's version, importable without the package root's imports (torch, the methods)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("samora")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
