"""loraspec's Python worker: one module per command, JSON request in, JSON-lines events out."""

__version__ = "0.1.0"
