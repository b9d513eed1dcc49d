"""The sottovoce actors: one process each, talking msgpack over ZeroMQ (protocol/SPEC.md)."""

__version__ = "0.1.0"
