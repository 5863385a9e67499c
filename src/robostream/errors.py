"""The root of robostream's errors: ``except RobostreamError`` catches any error a part raises on
purpose (a bad configuration, a refused request, a store that cannot be written, ...).

Each part derives its own errors from it and keeps its codes and messages; an error that is
also a ``ValueError`` or ``RuntimeError`` stays one, for the callers that catch those.
"""

from __future__ import annotations


class RobostreamError(Exception):
    """Base of every error robostream raises on purpose."""
