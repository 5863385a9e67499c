"""Options shared by the serving commands: ``--host`` and ``--port`` (help texts name the default).

Use them as ``host: Annotated[str | None, listen_host("api.host")] = None``: the type and the
``None`` default (the setting applies) stay at the command, the option's name and help are here.
"""

from __future__ import annotations

from typing import Any

import typer


def listen_host(default: str) -> Any:
    """``--host``: the address to listen on; ``default`` says where it comes from otherwise."""
    return typer.Option("--host", help=f"Address to listen on (default: {default}).")


def listen_port(default: str | None = None, *, help_text: str | None = None) -> Any:
    """``--port``: the port to listen on; ``default`` says where it comes from otherwise (or a whole
    ``help_text``)."""
    return typer.Option("--port", help=help_text or f"Port to listen on (default: {default}).")
