"""robostream: a Kafka-centric streaming platform for robot data."""

from importlib.metadata import PackageNotFoundError, version

from robostream.errors import RobostreamError

try:
    __version__ = version("robostream")  # pyproject.toml's [project] version: its one source
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["RobostreamError", "__version__"]
