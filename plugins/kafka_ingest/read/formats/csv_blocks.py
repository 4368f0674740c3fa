"""Record-aligned CSV blocks that Arrow parses exactly as the ``csv`` module would.

Why this exists: Python's ``csv`` module, with the per-line checks the reader's contract needs,
costs ~4 µs a row, about a fifth of the pipeline's CPU on an order extract. Arrow's CSV parser is
several times faster and releases the GIL, but on malformed input it decides differently: it
reads ``"ab"c`` as ``abc`` where the strict ``csv`` module refuses it, it knows no physical line
numbers, and it checks UTF-8 only in the columns it converts. So Arrow gets a block only when
cheap, vectorised checks prove the block lies in the part of RFC 4180 where both parsers are the
same state machine:

- the block is whole records: it starts at a record boundary and ends after a line end outside
  quotes, or at the end of the file outside quotes;
- every quote character opens a field (after a comma, a line end or the block's start), closes
  one (before a comma, a line end or the end of the file), or is half of a doubled quote; so no
  quote sits inside an unquoted field and nothing but a separator follows a closing quote;
- line ends are LF or CRLF (no bare CR), there is no NUL and no blank line, and the block does
  not start with a BOM (Arrow drops one there);
- the whole block is valid UTF-8 (Arrow's validator, the same standard as Python's codec);
- no record is longer, in bytes, than the field size limit, so no field or line can be;
- every record has the header's number of fields (Arrow's invalid-row handler is never called).

The first block that fails a check ends the fast path: :class:`Handover` gives the exact reader
the rest of the stream from that block's first byte, a record boundary. The property tests in
``tests/unit/read/formats/test_csv_blocks.py`` hold the two paths to the same batches on generated files,
well-formed and hostile.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

#: Bytes read from the file per block (~9k order rows): large enough to amortise the per-block
#: numpy and Arrow calls, small enough that the scan's temporaries (8 bytes per quote) stay small.
BLOCK_BYTES = 2 << 20
#: Blocks parsed ahead of the reader: 16 MiB, more than one 50k-row batch of orders, so the next
#: batch is ready while this one is validated and published (a smaller lead left the reader
#: waiting for the last few blocks of each batch).
READ_AHEAD_BLOCKS = 8

_QUOTE, _LF, _CR = 34, 10, 13
_BOM = b"\xef\xbb\xbf"
_CONTINUATION_MASK, _CONTINUATION = 0xC0, 0x80  # UTF-8 continuation bytes are 10xxxxxx


def _byte_set(allowed: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(allowed)] = True
    return table


#: What may precede a quote that opens a field; ``"`` makes it the second half of a doubled quote.
_BEFORE_OPENING = _byte_set(b',\n"')
#: What may follow a quote that closes a field; ``"`` makes it the first half of a doubled quote.
_AFTER_CLOSING = _byte_set(b',\n\r"')


@dataclass(frozen=True)
class CsvBlock:
    """Whole records of a file and Arrow's parse of them.

    ``columns`` holds one string array per requested field position, in the order asked for;
    ``chars_through[i]`` the decoded characters (line ends included) from the block's start to
    the end of record ``i``, which the reader's character budget counts; ``lines`` the physical
    lines in the block.
    """

    columns: list[pa.Array]
    chars_through: np.ndarray
    lines: int

    @property
    def rows(self) -> int:
        return len(self.chars_through)

    def chars(self, start: int, stop: int) -> int:
        """Characters of records ``start`` to ``stop`` (exclusive)."""
        return int(self.chars_through[stop - 1]) - self._chars_before(start)

    def running_chars(self, start: int, stop: int) -> np.ndarray:
        """Characters of records ``start``.. up to and including each record before ``stop``."""
        return self.chars_through[start:stop] - self._chars_before(start)

    def _chars_before(self, record: int) -> int:
        return int(self.chars_through[record - 1]) if record else 0


@dataclass(frozen=True)
class Handover:
    """Where the fast path stopped: ``rest`` is the stream from a record boundary on, after
    ``lines`` physical lines (the header's included)."""

    rest: io.BufferedReader
    lines: int


def csv_blocks(
    raw: IO[bytes],
    *,
    head: bytes,
    lines: int,
    width: int,
    picks: Sequence[int],
    field_limit: int,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[CsvBlock | Handover]:
    """The records after the header as :class:`CsvBlock` s; a :class:`Handover` if one fails a check.

    ``head`` holds bytes already read past the header, ``lines`` the header's physical lines,
    ``width`` its field count, and ``picks`` the field positions to convert.
    """
    names = [f"f{i}" for i in range(width)]
    parse = _ArrowParse(names, [names[i] for i in picks])
    buffer, at_end = head, False
    while True:
        scan = _Scan.of(buffer, at_end)
        while scan is None and not at_end and len(buffer) <= field_limit:
            chunk = raw.read(block_bytes)
            at_end = not chunk
            buffer += chunk
            scan = _Scan.of(buffer, at_end)
        if scan is None:  # nothing left, or no record end in reach: EOF inside quotes, a huge record
            if buffer:
                yield Handover(rest_of_stream(buffer, raw), lines)
            return
        block = memoryview(buffer)[: scan.cut]
        columns = parse(block, scan.rows) if scan.is_canonical(field_limit) else None
        if columns is None:
            yield Handover(rest_of_stream(buffer, raw), lines)
            return
        yield CsvBlock(columns, scan.chars_through(), scan.lines)
        lines += scan.lines
        buffer = buffer[scan.cut :]
        if at_end and not buffer:
            return


class _Scan:
    """The quotes and record ends of a buffer, and the checks that make its records canonical."""

    __slots__ = ("buffer", "ends", "newlines", "quotes", "view")

    def __init__(self, buffer: bytes, quotes: np.ndarray, newlines: np.ndarray, ends: np.ndarray):
        self.buffer, self.quotes, self.newlines, self.ends = buffer, quotes, newlines, ends
        self.view = np.frombuffer(buffer, np.uint8, int(ends[-1]))

    @classmethod
    def of(cls, buffer: bytes, at_end: bool) -> _Scan | None:
        """The whole records at the start of ``buffer``, or None if it holds none yet."""
        view = np.frombuffer(buffer, np.uint8)
        quotes = np.flatnonzero(view == _QUOTE)
        newlines = np.flatnonzero(view == _LF)
        # A line end is outside quotes when an even number of quotes precedes it.
        ends = newlines[(np.searchsorted(quotes, newlines) & 1) == 0] + 1
        if at_end and buffer and (not ends.size or ends[-1] != len(buffer)):
            if quotes.size % 2:
                return None  # the file ends inside quotes
            ends = np.append(ends, len(buffer))
        if not ends.size:
            return None
        cut = int(ends[-1])
        quotes = quotes[: np.searchsorted(quotes, cut)]
        newlines = newlines[: np.searchsorted(newlines, cut)]
        return cls(buffer, quotes, newlines, ends)

    @property
    def cut(self) -> int:
        return int(self.ends[-1])

    @property
    def rows(self) -> int:
        return len(self.ends)

    def chars_through(self) -> np.ndarray:
        """Decoded characters from the start to each record's end: bytes less UTF-8 continuations."""
        if self.buffer.isascii():
            return self.ends
        # Positions of the continuation bytes (few: most text is ASCII), counted before each end.
        continuation = np.flatnonzero((self.view & _CONTINUATION_MASK) == _CONTINUATION)
        return self.ends - np.searchsorted(continuation, self.ends)

    @property
    def lines(self) -> int:
        """Physical lines: every LF, and a last line without one."""
        return self.newlines.size + (1 if self.view[-1] != _LF else 0)

    def is_canonical(self, field_limit: int) -> bool:
        """True if the csv module and Arrow must read these records alike (module docstring)."""
        view, quotes, newlines, buffer = self.view, self.quotes, self.newlines, self.buffer
        size = view.size
        if view[0] == _LF or (view[0] == _CR and size > 1 and view[1] == _LF):
            return False  # a blank first line
        if buffer.startswith(_BOM):
            return False  # Arrow drops a BOM at the start of its input; mid-file it is data
        if np.diff(self.ends, prepend=0).max() > field_limit:
            return False
        gaps = np.diff(newlines)
        if gaps.size and gaps.min() == 1:
            return False  # a blank line
        if buffer.find(b"\x00", 0, size) >= 0:
            return False
        carriage = np.flatnonzero(view == _CR) if buffer.find(b"\r", 0, size) >= 0 else newlines[:0]
        if carriage.size:
            after = carriage + 1
            if after[-1] >= size or not (view[after] == _LF).all():
                return False  # a bare CR
            crlf_blank = newlines[1:][(gaps == 2) & (view[newlines[1:] - 1] == _CR)]
            if crlf_blank.size:
                return False  # a blank CRLF line
        opening, closing = quotes[0::2], quotes[1::2]
        before = view[opening - 1]  # opening == 0 wraps around; it is the block's start, allowed
        if not (_BEFORE_OPENING[before] | (opening == 0)).all():
            return False
        last = closing + 1 >= size
        after_closing = view[np.minimum(closing + 1, size - 1)]
        if not (_AFTER_CLOSING[after_closing] | last).all():
            return False
        return _is_utf8(view)


def _is_utf8(view: np.ndarray) -> bool:
    """Arrow's SIMD validator over the whole block, every column included."""
    offsets = pa.py_buffer(np.array([0, view.size], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(view)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


class _ArrowParse:
    """Arrow's CSV parser over one canonical block: string columns, nothing read as null."""

    def __init__(self, names: list[str], wanted: list[str]) -> None:
        self.names, self.wanted = names, wanted
        self.convert = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in wanted},
            include_columns=wanted,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )

    def __call__(self, block: memoryview, rows: int) -> list[pa.Array] | None:
        """The wanted columns, or None if a record has the wrong number of fields."""
        wrong_width: list[int] = []

        def invalid(row: pacsv.InvalidRow) -> str:
            wrong_width.append(row.actual_columns)
            return "skip"

        try:
            table = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(block)),
                read_options=pacsv.ReadOptions(
                    column_names=self.names, use_threads=False, block_size=max(len(block), 1 << 16)
                ),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
                convert_options=self.convert,
            )
        except pa.ArrowInvalid:  # not expected for a canonical block; the exact reader will say
            return None
        if wrong_width or table.num_rows != rows:
            return None
        return [table.column(name).combine_chunks() for name in self.wanted]


def rest_of_stream(head: bytes, raw: IO[bytes]) -> io.BufferedReader:
    """``head`` then the rest of ``raw``: the stream the exact reader goes on from."""
    return io.BufferedReader(_Chained(head, raw))


class _Chained(io.RawIOBase):
    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        super().__init__()
        self.head, self.raw = memoryview(head), raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.head:
            size = min(len(buffer), len(self.head))
            buffer[:size] = self.head[:size]
            self.head = self.head[size:]
            return size
        chunk = self.raw.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)
