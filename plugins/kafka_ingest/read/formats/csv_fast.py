"""CSV through Arrow where that is provably what the exact reader (``formats/csv.py``) would read.

Blocks that ``csv_blocks`` proves canonical (RFC 4180 quoting only, LF/CRLF, valid UTF-8, every
record the header's width, ...) are parsed by Arrow on a read-ahead thread, and the exact reader
takes over at the first block that is not; the batches are the same either way (property-tested
in ``tests/unit/read/formats/test_csv_blocks.py``). A file that cannot be read at all may fail a
batch earlier than through the exact reader, since the blocks are read up to 16 MiB ahead.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Generator, Iterator
from typing import IO

import numpy as np

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read.batching import BatchBuilder, Limits, ReadSpec, header_picks
from kafka_ingest.read.formats.csv import CsvReader, read_csv
from kafka_ingest.read.formats.csv_blocks import (
    BLOCK_BYTES,
    READ_AHEAD_BLOCKS,
    CsvBlock,
    Handover,
    csv_blocks,
    rest_of_stream,
)
from kafka_ingest.read.text import Lines, open_text
from kafka_ingest.runtime.prefetch import prefetch
from kafka_ingest.specs import ReaderOptions


def read_csv_fast(binary: IO[bytes], spec: ReadSpec, limits: Limits) -> Iterator[ReadBatch]:
    """Arrow blocks while they are canonical, the exact reader from the first that is not."""
    if spec.fast_path and _arrow_can_read(spec.options):
        return ArrowCsvReader(spec, limits, binary).batches()
    return read_csv(binary, spec, limits)


def _arrow_can_read(options: ReaderOptions) -> bool:
    """The fast path knows the contract's CSV only: UTF-8 and a comma."""
    return options.csv_delimiter == "," and codecs.lookup(options.encoding).name == "utf-8"


class ArrowCsvReader:
    """CSV through Arrow while ``csv_blocks`` proves a block reads as it would through
    :class:`CsvReader`, and through :class:`CsvReader` from the first block it cannot.

    Both paths give the same batches: records, numbers, rejects and cuts (tested on generated
    files, ``tests/unit/read/formats/test_csv_blocks.py``). The blocks are read and parsed up to
    ``READ_AHEAD_BLOCKS`` ahead on a background thread (``prefetch``), since Arrow and numpy
    release the GIL.
    """

    #: Bytes per block (``csv_blocks.BLOCK_BYTES``); tests make it small to cut records often.
    block_bytes = BLOCK_BYTES

    def __init__(self, spec: ReadSpec, limits: Limits, binary: IO[bytes]) -> None:
        self.spec, self.limits, self.binary = spec, limits, binary

    def batches(self) -> Iterator[ReadBatch]:
        head = self._read_head()
        header_end, header = _plain_header(head, self.limits.field)
        if len(header) < 2:  # one column: blank lines are records to Arrow, not to csv
            yield from self._exact(rest_of_stream(head, self.binary), lines=0)
            return
        picks = header_picks(self.spec, header)
        wanted = [pick for pick in picks if pick is not None]
        batch, used = BatchBuilder(self.spec, picks, 1), 0
        handover: Handover | None = None
        blocks = csv_blocks(
            self.binary,
            head=head[header_end:],
            lines=1,
            width=len(header),
            picks=wanted,
            field_limit=self.limits.field,
            block_bytes=self.block_bytes,
        )
        for block in prefetch(blocks, READ_AHEAD_BLOCKS, name="csv-blocks"):
            if isinstance(block, Handover):
                handover = block
                continue
            batch, used = yield from self._take(block, batch, used)
        if handover is None:
            if batch.records:
                yield batch.finish()
            return
        yield from self._exact(handover.rest, lines=handover.lines, resume=(header, batch, used))

    def _read_head(self) -> bytes:
        """The file's first bytes: at least its first line, unless that is over the limit."""
        head = self.binary.read(self.block_bytes)
        while b"\n" not in head and len(head) <= self.limits.field:
            more = self.binary.read(self.block_bytes)
            if not more:
                break
            head += more
        return head

    def _take(
        self, block: CsvBlock, batch: BatchBuilder, used: int
    ) -> Generator[ReadBatch, None, tuple[BatchBuilder, int]]:
        """Cut ``block`` into batches exactly where the exact reader would."""
        limits, start = self.limits, 0
        while start < block.rows:
            take = min(limits.rows - batch.records, block.rows - start)
            chars = block.chars(start, start + take)
            if used + chars > limits.chars:  # the batch ends after the record that passes the budget
                running = used + block.running_chars(start, start + take)
                take = int(np.argmax(running > limits.chars)) + 1
                chars = int(running[take - 1]) - used
            batch.extend([column.slice(start, take) for column in block.columns], take)
            used += chars
            start += take
            if batch.records >= limits.rows or used > limits.chars:
                yield batch.finish()
                batch, used = batch.successor(), 0
        return batch, used

    def _exact(
        self, rest: IO[bytes], *, lines: int, resume: tuple[list[str], BatchBuilder, int] | None = None
    ) -> Iterator[ReadBatch]:
        """The exact reader over ``rest``: the whole file, or (``resume``) from a record
        boundary ``lines`` physical lines in, going on with the fast path's header and batch."""
        encoding = self.spec.options.encoding
        with open_text(rest, encoding, "", at_start=resume is None) as text:
            reader = CsvReader(self.spec, self.limits, Lines(text, self.limits.field))
            reader.line_offset = lines
            if resume is None:
                yield from reader.batches()
                return
            reader.header, batch, used = resume
            yield from reader.resume(batch, used)


def _plain_header(head: bytes, limit: int) -> tuple[int, list[str]]:
    """Where the header line ends and its names, if the fast path can take it, else ``(0, [])``.

    It can if the header is one physical line within the limit, LF or CRLF ended, not blank,
    quote-balanced, free of NUL, valid UTF-8 and split cleanly by the csv module; anything else
    goes to the exact reader, which also says what is wrong with it.
    """
    end = head.find(b"\n") + 1
    line = head[:end]
    bare_cr = line.count(b"\r") - line.endswith(b"\r\n")
    if not end or end > limit or line.count(b'"') % 2 or b"\x00" in line or bare_cr:
        return 0, []
    if not line.strip(b"\r\n"):
        return 0, []
    try:
        return end, next(csv.reader([line.removeprefix(codecs.BOM_UTF8).decode("utf-8")], strict=True))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return 0, []
