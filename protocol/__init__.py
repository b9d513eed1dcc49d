"""Wire protocol of sottovoce: typed message records and the one codec (see SPEC.md)."""

from protocol.codec import PROTOCOL_VERSION, Envelope, decode, encode
from protocol.errors import ErrorCode, ProtocolError

__all__ = ["PROTOCOL_VERSION", "Envelope", "ErrorCode", "ProtocolError", "decode", "encode"]
