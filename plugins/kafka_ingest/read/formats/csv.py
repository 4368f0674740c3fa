"""CSV through Python's ``csv`` module, strict: the reference reader, exact on any input.

Empty fields stay ``""`` (the topic's ``prepare`` decides what empty means); a header-only or
empty file yields no batch. Rows that cannot be read become read-stage rejects and reading goes
on: ``wrong_field_count`` (``original`` is header -> value, extra values under ``_extra``),
``bad_quoting`` (the parser resynchronises at the next physical line), ``invalid_encoding``
(undecodable bytes, replaced by U+FFFD in ``original``), ``field_too_large`` (a field over the
field size limit, 1 MiB by default; reading resumes after the line that closes its quotes, so its
tail is not read as records) and ``line_too_long`` (a physical line over that limit: reading it
whole would break the memory bound, and no sane order row is that long). ``original`` is raw text
(at most 64 KiB) when the fields could not be split. Messages give the physical line numbers.

The field size limit is set on the ``csv`` module (it only has a process-wide one) while the
reader runs, and restored whenever it yields.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read.batching import STEP, BatchBuilder, Limits, ReadSpec, TextReader, header_picks
from kafka_ingest.read.files import ExtractReadError
from kafka_ingest.read.text import INVALID_ENCODING, LINE_TOO_LONG, Lines, clean, open_text

#: ``RejectedRow.error_type`` values of the CSV readers (besides the text ones).
WRONG_FIELD_COUNT = "wrong_field_count"
BAD_QUOTING = "bad_quoting"
FIELD_TOO_LARGE = "field_too_large"


def read_csv(binary: IO[bytes], spec: ReadSpec, limits: Limits) -> Iterator[ReadBatch]:
    """The exact reader over a whole file."""
    with open_text(binary, spec.options.encoding, "") as text:
        yield from CsvReader(spec, limits, Lines(text, limits.field)).batches()


class CsvReader(TextReader):
    """CSV through the C ``csv`` parser; strict, so bad quoting is seen instead of guessed at."""

    def __init__(self, spec: ReadSpec, limits: Limits, lines: Lines) -> None:
        super().__init__(spec, limits, lines)
        self.reader = csv.reader(self.source, delimiter=spec.options.csv_delimiter, strict=True)
        self.header: list[str] = []
        # Physical lines the parser did not count: before it started (the fast path's, see
        # resume) and read past it (see _skip_field_tail).
        self.line_offset = 0

    def _guarded(self, inner: Iterator[ReadBatch]) -> Iterator[ReadBatch]:
        """Our field limit in force only while this reader runs.

        The ``csv`` module has one process-wide limit; restoring it before every yield keeps
        other readers and other code (and tests) in the process on their own limit.
        """
        while True:
            previous = csv.field_size_limit(self.limits.field)
            try:
                batch = next(inner, None)
            finally:
                csv.field_size_limit(previous)
            if batch is None:
                return
            yield batch

    def _start(self) -> list[int | None] | None:
        try:
            header = next((row for row in self.reader if row), [])
        except csv.Error as exc:
            raise ExtractReadError(
                self.spec.file, f"line {self.reader.line_num}: unreadable header ({exc})"
            ) from exc
        if self.lines.too_long:
            raise ExtractReadError(self.spec.file, "header line longer than the field size limit")
        self.header = [clean(name) for name in header]
        self.lines.next_record()
        return header_picks(self.spec, self.header) if self.header else None

    def _fill(self, batch: BatchBuilder, budget: int) -> bool:
        """The hot loop: a clean row costs a length check, a flag check and an append.

        Everything else (blank lines, rejects, Arrow chunks, the batch limits) is handled off the
        clean path, between runs of at most ``STEP`` records.
        """
        lines, reader, pending = self.lines, self.reader, self.lines.pending
        width, append, limit = len(self.header), batch.rows.append, self.limits.rows
        while True:
            if len(batch.rows) >= STEP:
                batch.flush()
            n = batch.records
            stop = min(limit, n + STEP - len(batch.rows))
            try:
                for fields in reader:
                    if len(fields) == width and not lines.dirty:
                        append(fields)
                        pending.clear()
                        n += 1
                    elif self._odd_record(fields, batch, n):
                        n += 1
                    else:
                        continue
                    if n >= stop or lines.chars > budget:
                        break
                else:
                    batch.records = n
                    return True
            except csv.Error as exc:
                self._unparsable(exc, batch, n)
                n += 1
            batch.records = n
            if n >= limit or lines.chars > budget:
                return False

    def _odd_record(self, fields: list[str], batch: BatchBuilder, n: int) -> bool:
        """Reject a record that is not a clean row; False for a blank line (not a record)."""
        lines = self.lines
        if not fields and not lines.dirty:
            lines.next_record()
            return False
        span = lines.span(self.reader.line_num + self.line_offset)
        if lines.too_long:
            limit = self.limits.field
            batch.reject(n, LINE_TOO_LONG, f"{span}: a line is longer than {limit} characters", lines.raw())
        elif lines.bad_bytes:
            encoding = self.spec.options.encoding
            batch.reject(
                n, INVALID_ENCODING, f"{span}: bytes that are not valid {encoding}", self._dict(fields)
            )
        else:
            message = f"{span}: expected {len(self.header)} fields, got {len(fields)}"
            batch.reject(n, WRONG_FIELD_COUNT, message, self._dict(fields))
        lines.next_record()
        return True

    def _unparsable(self, exc: csv.Error, batch: BatchBuilder, n: int) -> None:
        lines, message = self.lines, str(exc)
        error_type = FIELD_TOO_LARGE if message.startswith("field larger") else BAD_QUOTING
        if lines.too_long:
            error_type = LINE_TOO_LONG
        span = lines.span(self.reader.line_num + self.line_offset)
        batch.reject(n, error_type, f"{span}: {message}", lines.raw())
        if error_type == FIELD_TOO_LARGE:
            self._skip_field_tail()
        lines.next_record()

    def _skip_field_tail(self) -> None:
        """Read past the rest of a quoted field that outgrew the field size limit.

        The parser gives up on the field and starts afresh at the next physical line, which is
        still inside the field's quotes: the field's tail would be read as records of its own, and
        its closing quote would open a field that swallows the next good record. An odd number of
        quote characters in the record so far means it is still inside quotes (``""`` counts
        two), so whole lines are skipped, neither parsed nor kept, until one closes the quotes.
        """
        lines = self.lines
        inside = sum(line.count('"') for line in lines.pending) % 2 == 1
        while inside:
            line = next(self.source, None)
            if line is None:
                return
            self.line_offset += 1
            lines.pending.clear()
            inside = line.count('"') % 2 == 0

    def _dict(self, fields: list[str]) -> dict[str, Any]:
        header = self.header
        original: dict[str, Any] = {h: clean(v) for h, v in zip(header, fields, strict=False)}
        if len(fields) > len(header):
            original["_extra"] = [clean(v) for v in fields[len(header) :]]
        return original
