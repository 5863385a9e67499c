"""The local embedded stack (development and tests): Kafka, SecantusDB, SeaweedFS, Redis."""

from robostream.stack.process import StackError
from robostream.stack.servers import Server, all_servers
from robostream.stack.stack import ServerStatus, Stack

__all__ = ["Server", "ServerStatus", "Stack", "StackError", "all_servers"]
