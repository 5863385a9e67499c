"""The one ``robostream`` command. Each sub-command only parses options and calls its part."""

from robostream.cli.main import app, main

__all__ = ["app", "main"]
