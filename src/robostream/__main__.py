"""``python -m robostream`` is the ``robostream`` command."""

from robostream.cli.main import main

main()
