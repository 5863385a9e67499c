"""``python -m robostream`` is the ``robostream`` command."""

from robostream.cli import main

main()
