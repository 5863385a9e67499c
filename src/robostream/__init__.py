"""robostream: a Kafka-centric streaming platform for robot data."""

__version__ = "0.1.0"
