"""The one ``robostream`` command (``robostream.cli.main``). Each sub-command module only parses
options and calls its part; nothing is imported here so that importing one command module does
not pull in every part."""
