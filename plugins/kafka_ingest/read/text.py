"""Text plumbing the text formats share: gzip, decoding, bounded physical lines, JSON text.

Undecodable bytes become lone surrogates (``surrogateescape``) so that a reader rejects the record
holding them instead of failing the file; :func:`clean` turns them into U+FFFD wherever text leaves
the reader. A physical line over the field size limit is never held whole (:class:`Lines`).
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import gzip
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

#: ``RejectedRow.error_type`` values every text format can give.
INVALID_ENCODING = "invalid_encoding"
LINE_TOO_LONG = "line_too_long"

RAW_LIMIT = 64 << 10  # longest raw text kept as a reject's ``original``
SURROGATE = re.compile("[\ud800-\udfff]")
_GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def decompressed(raw: IO[bytes], gz: bool) -> Iterator[IO[bytes]]:
    """The file's bytes, gunzipped when its suffix or its magic bytes say gzip."""
    peek = getattr(raw, "peek", None)
    head = peek(2)[:2] if peek else raw.read(2)
    if not peek:
        raw.seek(0)
    if not (gz or head == _GZIP_MAGIC):
        yield raw
        return
    with gzip.GzipFile(fileobj=raw, mode="rb") as binary:
        yield binary  # type: ignore[misc]  # GzipFile is a binary stream; typeshed types it apart


@contextmanager
def open_text(
    binary: IO[bytes], encoding: str, newline: str, *, at_start: bool = True
) -> Iterator[io.TextIOWrapper]:
    """Decode as a stream; a BOM at the start is dropped for UTF-8.

    Undecodable bytes become lone surrogates (``surrogateescape``): the readers reject the record
    holding them instead of failing the file.
    """
    if at_start and codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    text = io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline=newline)
    try:
        yield text
    finally:
        text.detach()  # the stream belongs to whoever opened it


class Lines:
    """Physical lines, each at most ``limit`` characters, and what the record loops must know.

    ``pending`` holds the lines of the record being parsed (for a reject's raw text); ``chars``
    counts what was read; ``bad_bytes`` and ``too_long`` flag the current record. An over-long
    line is skipped in bounded pieces and handed on as a bare line end, so the parser's state
    stays sane and the record around it is rejected.
    """

    __slots__ = ("bad_bytes", "chars", "dirty", "limit", "pending", "text", "too_long")

    def __init__(self, text: io.TextIOWrapper, limit: int) -> None:
        self.text, self.limit = text, limit
        self.pending: list[str] = []
        self.chars = 0
        self.dirty = self.bad_bytes = self.too_long = False

    def __iter__(self) -> Iterator[str]:
        readline, cap, append = self.text.readline, self.limit + 2, self.pending.append
        while line := readline(cap):
            size = len(line)
            if size == cap and line[-1] != "\n":
                append(line[:RAW_LIMIT])
                line, size = self._skip_rest(line), 1
            else:
                append(line)
                if not line.isascii():
                    self._check_bytes(line)
            self.chars += size
            yield line

    def _check_bytes(self, line: str) -> None:
        """Undecodable bytes were decoded to lone surrogates, which UTF-8 cannot encode."""
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            self.dirty = self.bad_bytes = True

    def _skip_rest(self, line: str) -> str:
        self.dirty = self.too_long = True
        cap = self.limit + 2
        while len(line) == cap and line[-1] != "\n":
            line = self.text.readline(cap)
        return "\n"

    def span(self, end: int) -> str:
        """The physical lines of the pending record, for messages."""
        start = end - len(self.pending) + 1
        return f"line {end}" if start >= end else f"lines {start}-{end}"

    def raw(self) -> str:
        return clean("".join(self.pending)[:RAW_LIMIT])

    def next_record(self) -> None:
        self.pending.clear()
        self.dirty = self.bad_bytes = self.too_long = False


def clean(text: str) -> str:
    """JSON-safe text: undecodable bytes (lone surrogates) become U+FFFD."""
    return SURROGATE.sub("\ufffd", text)


def json_text(value: Any) -> str:
    """A value as compact JSON; decimals, instants and bytes as text (never a float detour)."""
    if value is True or value is False:
        return "true" if value else "false"
    return _ENCODER.encode(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dt.timedelta):
        return str(value)
    raise TypeError(f"no JSON text for {type(value).__name__}")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)
