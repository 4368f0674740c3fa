"""The Confluent wire format's frame: a zero magic byte, then the schema id as 4 big-endian bytes.

Every encoder writes this header before the Avro body; it is built here only, so the range check
and the byte layout cannot drift apart between the encoders.
"""

from __future__ import annotations

import struct

MAGIC_BYTE = 0
HEADER_SIZE = 5


def wire_header(schema_id: int) -> bytes:
    """The 5-byte header of every value framed with ``schema_id``; refuses an id that cannot fit."""
    if not 0 <= schema_id < 2**32:
        raise ValueError(f"schema id {schema_id} does not fit the 4-byte wire format")
    return struct.pack(">bI", MAGIC_BYTE, schema_id)
