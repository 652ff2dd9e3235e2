"""A client of dispatchd in Python's standard library alone (see
docs/PROTOCOL.md in the dispatchd repository)."""
from .client import Client, Error, default_socket, exit_code

__all__ = ["Client", "Error", "default_socket", "exit_code"]
__version__ = "0.1.0"
