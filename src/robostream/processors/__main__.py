"""``python -m robostream.processors`` = ``robostream process`` (also without the CLI wiring)."""

from robostream.cli.process_cmd import main

main()
