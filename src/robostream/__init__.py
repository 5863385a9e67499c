"""robostream: a Kafka-centric streaming platform for robot data."""

from robostream.errors import RobostreamError

__version__ = "0.1.0"

__all__ = ["RobostreamError", "__version__"]
