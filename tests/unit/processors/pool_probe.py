"""Pool-process side of the encoder pool's start-up test: what a spawned pool process has loaded."""

from __future__ import annotations

import sys


def loaded_modules() -> list[str]:
    """The modules this process has imported."""
    return sorted(sys.modules)
