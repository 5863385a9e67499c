"""The SDK's version (the wheel's, read by hatchling)."""

__version__ = "0.1.0"
