"""The batch loop every reader shares: what to read, the limits, a batch in the making.

A reader fills :class:`BatchBuilder` objects and hands on their :class:`ReadBatch`; how records get
numbered, rejected and cut into batches is the same for every format (``read/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from kafka_ingest.batches import ReadBatch, RejectedRow
from kafka_ingest.read.files import ExtractReadError
from kafka_ingest.read.text import Lines
from kafka_ingest.specs import ReaderOptions, Stage

#: Default longest field (and physical line), in characters.
FIELD_SIZE_LIMIT = 1 << 20

STEP = 1024  # rows per Arrow chunk: short-lived row lists keep Python's cyclic GC cheap
STRING = pa.string()


class ReadSpec:
    """What to read: the file's label, its columns and the reader options.

    ``fast_path`` False makes a format with a fast path read with its reference path only (the
    tests compare the two).
    """

    def __init__(
        self,
        file: str,
        required: Sequence[str],
        optional: Sequence[str],
        options: ReaderOptions,
        *,
        fast_path: bool = True,
    ) -> None:
        self.file, self.required, self.options = file, tuple(required), options
        self.names = self.required + tuple(optional)
        self.fast_path = fast_path


class Limits:
    """Batch limits (records, characters) and the field size limit."""

    def __init__(self, rows: int, chars: int, field: int) -> None:
        self.rows, self.chars, self.field = rows, chars, field


def header_picks(spec: ReadSpec, header: list[str]) -> list[int | None]:
    """Where each wanted column is in a file's header; a missing required column fails the file."""
    missing = [c for c in spec.required if c not in header]
    if missing:
        raise ExtractReadError(spec.file, f"header lacks required column(s) {', '.join(missing)}")
    repeated = sorted({c for c in spec.names if header.count(c) > 1})
    if repeated:
        raise ExtractReadError(spec.file, f"header repeats column(s) {', '.join(repeated)}")
    return [header.index(c) if c in header else None for c in spec.names]


class BatchBuilder:
    """One batch in the making: accepted rows in Arrow chunks of ``STEP`` rows, and rejects."""

    def __init__(self, spec: ReadSpec, picks: list[int | None], first: int) -> None:
        self.spec, self.picks, self.first = spec, picks, first
        self.records = 0
        self.rows: list[list[Any]] = []
        self.chunks: list[list[pa.Array]] = [[] for _ in picks]
        self.rejected: list[RejectedRow] = []

    def reject(self, n: int, error_type: str, message: str, original: Any) -> None:
        """Reject the ``n``-th record (0-based) of this batch."""
        self.rejected.append(RejectedRow(self.first + n, Stage.READ, error_type, message, original=original))

    def flush(self) -> None:
        """Transpose the buffered rows into one Arrow chunk per column."""
        rows = self.rows
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        for chunks, pick in zip(self.chunks, self.picks, strict=True):
            chunks.append(pa.nulls(len(rows), STRING) if pick is None else pa.array(columns[pick], STRING))
        rows.clear()

    def finish(self) -> ReadBatch:
        self.flush()
        arrays = [pa.chunked_array(chunks, STRING) for chunks in self.chunks]
        table = pa.Table.from_arrays(arrays, names=list(self.spec.names)).combine_chunks()
        numbers = np.arange(self.first, self.first + self.records, dtype=np.int64)
        if self.rejected:
            keep = np.ones(self.records, dtype=bool)
            keep[[r.row - self.first for r in self.rejected]] = False
            numbers = numbers[keep]
        return ReadBatch(self.spec.file, table, numbers, self.rejected, self.first + self.records - 1)

    def successor(self) -> BatchBuilder:
        return BatchBuilder(self.spec, self.picks, self.first + self.records)

    def extend(self, columns: Sequence[pa.Array], count: int) -> None:
        """Add ``count`` records parsed elsewhere: one array per picked column, in pick order."""
        self.flush()
        parsed = iter(columns)
        for chunks, pick in zip(self.chunks, self.picks, strict=True):
            chunks.append(pa.nulls(count, STRING) if pick is None else next(parsed))
        self.records += count


class TextReader:
    """The batch loop shared by CSV and JSON Lines; ``_fill`` reads one batch's records."""

    def __init__(self, spec: ReadSpec, limits: Limits, lines: Lines) -> None:
        self.spec, self.limits, self.lines = spec, limits, lines
        self.source = iter(lines)

    def batches(self) -> Iterator[ReadBatch]:
        return self._guarded(self._all_batches())

    def resume(self, batch: BatchBuilder, used: int) -> Iterator[ReadBatch]:
        """Go on filling ``batch``, which already spent ``used`` characters of its budget.

        The CSV fast path hands over here when a block is not canonical (``csv_blocks``).
        """
        return self._guarded(self._batches_from(batch, used))

    def _all_batches(self) -> Iterator[ReadBatch]:
        picks = self._start()
        if picks is not None:
            yield from self._batches_from(BatchBuilder(self.spec, picks, 1), 0)

    def _batches_from(self, batch: BatchBuilder, used: int) -> Iterator[ReadBatch]:
        while True:
            at_end = self._fill(batch, self.lines.chars - used + self.limits.chars)
            used = 0
            if batch.records:
                yield batch.finish()
            if at_end:
                return
            batch = batch.successor()

    def _guarded(self, inner: Iterator[ReadBatch]) -> Iterator[ReadBatch]:
        """``inner``, with whatever process-wide setting the reader needs while it runs."""
        return inner

    def _start(self) -> list[int | None] | None:
        """Column positions in a row, or None for a file without records."""
        raise NotImplementedError

    def _fill(self, batch: BatchBuilder, budget: int) -> bool:
        """Read records into ``batch`` until it is full, or ``lines.chars`` passes ``budget``;
        True at the end of the file."""
        raise NotImplementedError
