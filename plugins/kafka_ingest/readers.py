"""Extract files -> bounded Arrow batches: CSV, JSON Lines and Parquet, gzip, local or fsspec.

The reader is the first stage of the pipeline and knows nothing about Airflow, so the core can be
tested and benchmarked without a scheduler. It streams one file into :class:`ReadBatch` objects;
memory is bounded by the batch limits and the field size limit, whatever the file's size.

Decisions taken where EXTRACTS.md is silent:

- **Row numbers** are 1-based data record numbers within the file: the CSV header is not a record,
  a quoted field spanning several lines is one record, and blank lines (CSV and JSON Lines) are not
  records at all (skipped, never counted, never rejected). Every other record ends up exactly once
  in ``table`` or in ``rejected`` of one batch; batches come in order and are contiguous, and a
  batch's ``last_row`` is the highest record number it accounts for. Parquet rows are numbered by
  their 1-based index.
- **Batches** are cut after ``batch_rows`` records or after the record that makes the text read
  for the batch exceed ``batch_bytes`` (CSV/JSONL: decoded characters of the lines read; Parquet:
  UTF-8 bytes of the converted text), whichever comes first.
- **Output**: one Arrow ``string`` column per name in ``columns + optional_columns``, in that
  order. Extra columns are ignored; a missing optional column is all nulls; a missing required
  column fails the file (:class:`ExtractReadError`), since no row of it could be valid.
- **CSV** (Python's ``csv`` module, strict mode, is the reference): for speed, blocks that
  ``csv_blocks`` proves canonical (RFC 4180 quoting only, LF/CRLF, valid UTF-8, every record the
  header's width, ...) are parsed by Arrow on a read-ahead thread, and the exact reader takes
  over at the first block that is not; the batches are the same either way (property-tested).
  Empty fields stay ``""`` (the topic's prepare
  step decides what empty means); a header-only or empty file yields no batch. Rows that cannot
  be read become read-stage rejects and reading goes on: ``wrong_field_count`` (``original`` is
  header -> value, extra values under ``_extra``), ``bad_quoting`` (the parser resynchronises at
  the next physical line), ``invalid_encoding`` (undecodable bytes, replaced by U+FFFD in
  ``original``), ``field_too_large`` (a field over the field size limit, 1 MiB by default;
  reading resumes after the line that closes its quotes, so its tail is not read as records) and
  ``line_too_long`` (a physical line over that limit: reading it whole would break the memory
  bound, and no sane order row is that long). ``original`` is raw text (at most 64 KiB) when
  the fields could not be split. Messages give the physical line numbers.
- **JSON Lines**: numbers are parsed as their text (``12.50`` stays ``12.50``, ``1e3`` stays
  ``1e3``, ``NaN`` becomes text the validator rejects); ``true``/``false`` become text; nested
  values become compact JSON in which numbers are JSON *strings* holding the original text
  (``{"quantity":"2","unit_price":"12.50"}``), so no decimal is ever rounded. A key missing from
  an object is null, not a read error: the validator names the rule. Rejects (raw line as
  ``original``): ``invalid_json``, ``not_an_object``, ``invalid_encoding``, ``line_too_long``.
- **Parquet**: values become text: decimals keep their scale (``12.50``), timestamps with a time
  zone become ISO 8601 UTC with ``Z`` and the unit's precision; timestamps *without* a time zone
  become ISO 8601 without an offset, which the contract treats as invalid, so the validator
  rejects them; nested values become JSON (decimals as JSON strings, integers as numbers). A
  0-byte file yields no batch, like an empty CSV; a corrupt file, invalid UTF-8 in a string
  column or a type with no text form fails the file.
- ``json_columns`` name the nested columns; CSV already carries them as JSON text, and JSONL and
  Parquet turn every nested value into JSON, so they need no special casing here. Whoever parses
  that JSON must accept a number *or* a numeric string for a nested number (CSV passes upstream's
  text through, JSONL writes strings, Parquet writes integers as numbers and decimals as strings).
- Which records are rejected never depends on the columns asked for (undecodable bytes anywhere
  in a CSV line or JSON object reject it), so a key-only scan numbers and skips exactly the rows a
  full read does.
- Part files: every name with a known suffix except ``_*`` and ``.*`` (Spark writes JSON Lines as
  ``part-*.json``, hence ``.json``); a blank line is an empty one (a JSONL line of whitespace too).
- A file that cannot be read at all (missing, corrupt gzip, deleted mid-read, corrupt Parquet)
  raises :class:`ExtractReadError` naming the file, when it is met (the CSV fast path reads up
  to 16 MiB ahead, so it may come a batch earlier): batches already yielded stay valid, and the
  caller must not treat the file as done.
- The field size limit is set on the ``csv`` module (it only has a process-wide one) while the
  reader runs, and restored whenever it yields.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import zlib
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Protocol, TypeVar, overload

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kafka_ingest.batches import ReadBatch, RejectedRow
from kafka_ingest.csv_blocks import (
    BLOCK_BYTES,
    READ_AHEAD_BLOCKS,
    CsvBlock,
    Handover,
    csv_blocks,
    rest_of_stream,
)
from kafka_ingest.prefetch import prefetch
from kafka_ingest.specs import ReaderOptions, Stage

#: Default longest field (and physical line), in characters.
FIELD_SIZE_LIMIT = 1 << 20

#: ``RejectedRow.error_type`` values of the read stage.
WRONG_FIELD_COUNT = "wrong_field_count"
BAD_QUOTING = "bad_quoting"
INVALID_ENCODING = "invalid_encoding"
FIELD_TOO_LARGE = "field_too_large"
LINE_TOO_LONG = "line_too_long"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"

_RAW_LIMIT = 64 << 10  # longest raw text kept as a reject's ``original``
_STEP = 1024  # rows per Arrow chunk: short-lived row lists keep Python's cyclic GC cheap
_STRING = pa.string()
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_GZIP_MAGIC = b"\x1f\x8b"
_TEXT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_DECODER = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)
_PLAIN = frozenset({str, type(None)})


class ExtractReadError(Exception):
    """A file that cannot be read at all; a retry helps only if the file changes."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file


class _Openable(Protocol):
    def open(self, mode: str) -> Any: ...


class _Entry(Protocol):
    @property
    def name(self) -> str: ...


_E = TypeVar("_E", bound=_Entry)
_E_co = TypeVar("_E_co", bound=_Entry, covariant=True)


class _Directory(Protocol[_E_co]):
    def iterdir(self) -> Iterable[_E_co]: ...


ExtractPath = str | _Openable


def detect_format(path: ExtractPath) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the file name (gzip only for the text formats)."""
    name = _name(path).lower()
    stem = name.removesuffix(".gz")
    for suffix, fmt in _TEXT_SUFFIXES.items():
        if stem.endswith(suffix):
            return fmt
    if name.endswith(".parquet"):
        return "parquet"
    raise ValueError(f"{path}: not an extract file (.csv, .jsonl, .json, .ndjson [.gz] or .parquet)")


@overload
def list_part_files(day_dir: str) -> list[str]: ...
@overload
def list_part_files(day_dir: _Directory[_E]) -> list[_E]: ...
def list_part_files(day_dir: str | _Directory[Any]) -> list[Any]:
    """The day's part files sorted by name, the order the duplicate rule is defined in.

    ``_SUCCESS``, hidden or underscore files and unknown suffixes are skipped. An object with
    ``iterdir`` (ObjectStoragePath, UPath) yields entries of its own type, so they keep their
    filesystem and credentials; a string yields strings in the same form (path or URL).
    """
    if not isinstance(day_dir, str):
        return sorted((e for e in day_dir.iterdir() if _is_part_name(e.name)), key=lambda e: e.name)
    fs, root = fsspec.core.url_to_fs(day_dir)
    files = [entry["name"] for entry in fs.ls(root, detail=True) if entry["type"] == "file"]
    names = sorted(posixpath.basename(f.rstrip("/")) for f in files)
    base, sep = day_dir.rstrip("/"), "/" if "://" in day_dir else os.sep
    return [f"{base}{sep}{name}" for name in names if _is_part_name(name)]


class PinnedFile:
    """An fsspec URL whose filesystem was resolved by the thread that made this object.

    fsspec caches filesystem instances per thread, so a URL opened on another thread gets a new
    instance: for ``simplecache::`` URLs a second download into a second temp folder, for object
    stores a second session. The pipeline pins each file in the task's thread (where it was
    fingerprinted) before its read runs on the parse-ahead thread. ``str()`` is the URL, so
    batches, rejects and headers name the file as before.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = posixpath.basename(url.rstrip("/"))
        self._fs, self._location = fsspec.core.url_to_fs(url)

    def open(self, mode: str) -> Any:
        return self._fs.open(self._location, mode)

    def __str__(self) -> str:
        return self.url


def pinned(path: ExtractPath) -> ExtractPath:
    """``path``, with an fsspec URL resolved in this thread (see :class:`PinnedFile`)."""
    return PinnedFile(path) if isinstance(path, str) and "://" in path else path


def fingerprint(path: ExtractPath) -> str:
    """SHA-256 of the file's bytes as stored, so a rewritten extract is told from a retried one."""
    digest = hashlib.sha256()
    with _read_errors(str(path)), _open_binary(path) as raw:
        while chunk := raw.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


#: ``fsspec`` ``info()`` fields that change when an object is rewritten (local, S3, GCS, Azure, ...).
_STAMPS = ("mtime", "LastModified", "last_modified", "ETag", "etag", "generation")


def file_state(path: ExtractPath) -> tuple[Any, ...]:
    """The file's size and modification stamps: one ``stat`` (or HEAD), unlike :func:`fingerprint`.

    A caller compares it before and during a read to notice a file truncated, rewritten or
    deleted under it: such a read ends early or mixes versions without any read error.
    """
    with _read_errors(str(path)):
        if not isinstance(path, str):
            stat = path.stat()  # type: ignore[attr-defined]
            return (stat.st_size, stat.st_mtime)
        fs, location = fsspec.core.url_to_fs(path)
        info = fs.info(location)
    return (info.get("size"), *(info[stamp] for stamp in _STAMPS if stamp in info))


def read_extract(
    path: ExtractPath,
    *,
    columns: Sequence[str],
    optional_columns: Sequence[str] = (),
    json_columns: Sequence[str] = (),
    batch_rows: int = 50_000,
    batch_bytes: int = 64 << 20,
    options: ReaderOptions | None = None,
    field_size_limit: int = FIELD_SIZE_LIMIT,
    arrow_csv: bool = True,
) -> Iterator[ReadBatch]:
    """Stream one extract file as bounded batches (see the module docstring for the semantics).

    ``arrow_csv=False`` reads CSV with the exact reader only (the tests compare the two paths).
    """
    if batch_rows < 1 or batch_bytes < 1 or field_size_limit < 1:
        raise ValueError("batch_rows, batch_bytes and field_size_limit must be positive")
    fmt = detect_format(path)
    spec = _Spec(str(path), columns, optional_columns, options or ReaderOptions())
    limits = _Limits(batch_rows, batch_bytes, field_size_limit)
    with _read_errors(spec.file), _open_binary(path) as raw:
        if fmt == "parquet":
            yield from _parquet_batches(raw, spec, limits)
            return
        with _decompressed(raw, _name(path).lower().endswith(".gz")) as binary:
            if fmt == "csv" and arrow_csv and _arrow_can_read(spec.options):
                yield from _ArrowCsvReader(spec, limits, binary).batches()
                return
            newline = "" if fmt == "csv" else "\n"
            with _open_text(binary, spec.options.encoding, newline) as text:
                lines = _Lines(text, field_size_limit)
                reader = (
                    _CsvReader(spec, limits, lines) if fmt == "csv" else _JsonlReader(spec, limits, lines)
                )
                yield from reader.batches()


class _Spec:
    """What to read: the file's label, its columns and the reader options."""

    def __init__(self, file: str, required: Sequence[str], optional: Sequence[str], options: ReaderOptions):
        self.file, self.required, self.options = file, tuple(required), options
        self.names = self.required + tuple(optional)


class _Limits:
    """Batch limits (records, characters) and the field size limit."""

    def __init__(self, rows: int, chars: int, field: int) -> None:
        self.rows, self.chars, self.field = rows, chars, field


# --- opening -------------------------------------------------------------------------------------


def _name(path: ExtractPath) -> str:
    name = getattr(path, "name", None)
    return name if isinstance(name, str) else posixpath.basename(str(path).rstrip("/"))


def _is_part_name(name: str) -> bool:
    if name.startswith((".", "_")):
        return False
    try:
        detect_format(name)
    except ValueError:
        return False
    return True


@contextmanager
def _read_errors(file: str) -> Iterator[None]:
    """Turn the ways a file can fail to be read into one error that names it."""
    try:
        yield
    except (OSError, EOFError, zlib.error, UnicodeError, pa.ArrowException) as exc:
        raise ExtractReadError(file, f"cannot be read: {type(exc).__name__}: {exc}") from exc


@contextmanager
def _open_binary(path: ExtractPath) -> Iterator[IO[bytes]]:
    if not isinstance(path, str):
        with path.open("rb") as raw:
            yield raw
    elif "://" not in path:
        with open(path, "rb") as raw:
            yield raw
    else:
        with fsspec.open(path, "rb") as raw:
            yield raw


@contextmanager
def _decompressed(raw: IO[bytes], gz: bool) -> Iterator[IO[bytes]]:
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
def _open_text(
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


class _Lines:
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
                append(line[:_RAW_LIMIT])
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
        return _clean("".join(self.pending)[:_RAW_LIMIT])

    def next_record(self) -> None:
        self.pending.clear()
        self.dirty = self.bad_bytes = self.too_long = False


def _clean(text: str) -> str:
    """JSON-safe text: undecodable bytes (lone surrogates) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


# --- batches -------------------------------------------------------------------------------------


class _Batch:
    """One batch in the making: accepted rows in Arrow chunks of ``_STEP`` rows, and rejects."""

    def __init__(self, spec: _Spec, picks: list[int | None], first: int) -> None:
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
            chunks.append(pa.nulls(len(rows), _STRING) if pick is None else pa.array(columns[pick], _STRING))
        rows.clear()

    def finish(self) -> ReadBatch:
        self.flush()
        arrays = [pa.chunked_array(chunks, _STRING) for chunks in self.chunks]
        table = pa.Table.from_arrays(arrays, names=list(self.spec.names)).combine_chunks()
        numbers = np.arange(self.first, self.first + self.records, dtype=np.int64)
        if self.rejected:
            keep = np.ones(self.records, dtype=bool)
            keep[[r.row - self.first for r in self.rejected]] = False
            numbers = numbers[keep]
        return ReadBatch(self.spec.file, table, numbers, self.rejected, self.first + self.records - 1)

    def successor(self) -> _Batch:
        return _Batch(self.spec, self.picks, self.first + self.records)

    def extend(self, columns: Sequence[pa.Array], count: int) -> None:
        """Add ``count`` records parsed elsewhere: one array per picked column, in pick order."""
        self.flush()
        parsed = iter(columns)
        for chunks, pick in zip(self.chunks, self.picks, strict=True):
            chunks.append(pa.nulls(count, _STRING) if pick is None else next(parsed))
        self.records += count


class _TextReader:
    """The batch loop shared by CSV and JSON Lines; ``_fill`` reads one batch's records."""

    def __init__(self, spec: _Spec, limits: _Limits, lines: _Lines) -> None:
        self.spec, self.limits, self.lines = spec, limits, lines
        self.source = iter(lines)

    def batches(self) -> Iterator[ReadBatch]:
        return self._guarded(self._all_batches())

    def resume(self, batch: _Batch, used: int) -> Iterator[ReadBatch]:
        """Go on filling ``batch``, which already spent ``used`` characters of its budget.

        The CSV fast path hands over here when a block is not canonical (``csv_blocks``).
        """
        return self._guarded(self._batches_from(batch, used))

    def _all_batches(self) -> Iterator[ReadBatch]:
        picks = self._start()
        if picks is not None:
            yield from self._batches_from(_Batch(self.spec, picks, 1), 0)

    def _batches_from(self, batch: _Batch, used: int) -> Iterator[ReadBatch]:
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

    def _fill(self, batch: _Batch, budget: int) -> bool:
        """Read records into ``batch`` until it is full, or ``lines.chars`` passes ``budget``;
        True at the end of the file."""
        raise NotImplementedError


class _CsvReader(_TextReader):
    """CSV through the C ``csv`` parser; strict, so bad quoting is seen instead of guessed at."""

    def __init__(self, spec: _Spec, limits: _Limits, lines: _Lines) -> None:
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
        self.header = [_clean(name) for name in header]
        self.lines.next_record()
        return _header_picks(self.spec, self.header) if self.header else None

    def _fill(self, batch: _Batch, budget: int) -> bool:
        """The hot loop: a clean row costs a length check, a flag check and an append.

        Everything else (blank lines, rejects, Arrow chunks, the batch limits) is handled off the
        clean path, between runs of at most ``_STEP`` records.
        """
        lines, reader, pending = self.lines, self.reader, self.lines.pending
        width, append, limit = len(self.header), batch.rows.append, self.limits.rows
        while True:
            if len(batch.rows) >= _STEP:
                batch.flush()
            n = batch.records
            stop = min(limit, n + _STEP - len(batch.rows))
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

    def _odd_record(self, fields: list[str], batch: _Batch, n: int) -> bool:
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

    def _unparsable(self, exc: csv.Error, batch: _Batch, n: int) -> None:
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
        original: dict[str, Any] = {h: _clean(v) for h, v in zip(header, fields, strict=False)}
        if len(fields) > len(header):
            original["_extra"] = [_clean(v) for v in fields[len(header) :]]
        return original


def _arrow_can_read(options: ReaderOptions) -> bool:
    """The fast path knows the contract's CSV only: UTF-8 and a comma."""
    return options.csv_delimiter == "," and codecs.lookup(options.encoding).name == "utf-8"


class _ArrowCsvReader:
    """CSV through Arrow while ``csv_blocks`` proves a block reads as it would through
    :class:`_CsvReader`, and through :class:`_CsvReader` from the first block it cannot.

    Both paths give the same batches: records, numbers, rejects and cuts (tested on generated
    files, ``tests/unit/test_csv_blocks.py``). The blocks are read and parsed up to
    ``READ_AHEAD_BLOCKS`` ahead on a background thread (``prefetch``), since Arrow and numpy
    release the GIL.
    """

    #: Bytes per block (``csv_blocks.BLOCK_BYTES``); tests make it small to cut records often.
    block_bytes = BLOCK_BYTES

    def __init__(self, spec: _Spec, limits: _Limits, binary: IO[bytes]) -> None:
        self.spec, self.limits, self.binary = spec, limits, binary

    def batches(self) -> Iterator[ReadBatch]:
        head = self._read_head()
        header_end, header = _plain_header(head, self.limits.field)
        if len(header) < 2:  # one column: blank lines are records to Arrow, not to csv
            yield from self._exact(rest_of_stream(head, self.binary), lines=0)
            return
        picks = _header_picks(self.spec, header)
        wanted = [pick for pick in picks if pick is not None]
        batch, used = _Batch(self.spec, picks, 1), 0
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
        self, block: CsvBlock, batch: _Batch, used: int
    ) -> Generator[ReadBatch, None, tuple[_Batch, int]]:
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
        self, rest: IO[bytes], *, lines: int, resume: tuple[list[str], _Batch, int] | None = None
    ) -> Iterator[ReadBatch]:
        """The exact reader over ``rest``: the whole file, or (``resume``) from a record
        boundary ``lines`` physical lines in, going on with the fast path's header and batch."""
        encoding = self.spec.options.encoding
        with _open_text(rest, encoding, "", at_start=resume is None) as text:
            reader = _CsvReader(self.spec, self.limits, _Lines(text, self.limits.field))
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


def _header_picks(spec: _Spec, header: list[str]) -> list[int | None]:
    missing = [c for c in spec.required if c not in header]
    if missing:
        raise ExtractReadError(spec.file, f"header lacks required column(s) {', '.join(missing)}")
    repeated = sorted({c for c in spec.names if header.count(c) > 1})
    if repeated:
        raise ExtractReadError(spec.file, f"header repeats column(s) {', '.join(repeated)}")
    return [header.index(c) if c in header else None for c in spec.names]


class _JsonlReader(_TextReader):
    """JSON Lines, one ``json`` parse per line; numbers keep their text (see the module docstring)."""

    line_number = 0

    def _start(self) -> list[int | None] | None:
        return list(range(len(self.spec.names)))

    def _fill(self, batch: _Batch, budget: int) -> bool:
        lines, limit = self.lines, self.limits.rows
        for line in self.source:
            self.line_number += 1
            text = line.strip(" \t\r\n")
            if not text and not lines.dirty:
                lines.pending.clear()
                continue
            self._take(text, batch)
            lines.next_record()
            if batch.records >= limit or lines.chars > budget:
                return False
        return True

    def _take(self, text: str, batch: _Batch) -> None:
        """Add one record to ``batch``, as a row or as a reject."""
        lines, n = self.lines, batch.records
        batch.records = n + 1
        if lines.too_long:
            reason = LINE_TOO_LONG, f"longer than {self.limits.field} characters"
        elif lines.bad_bytes:
            reason = INVALID_ENCODING, f"bytes that are not valid {self.spec.options.encoding}"
        else:
            row = _json_row(text, self.spec.names)
            if not isinstance(row, list):
                reason = row
            else:
                batch.rows.append(row)
                if len(batch.rows) >= _STEP:
                    batch.flush()
                return
        batch.reject(n, reason[0], f"line {self.line_number}: {reason[1]}", lines.raw())


def _json_row(text: str, names: tuple[str, ...]) -> list[str | None] | tuple[str, str]:
    """One JSON Lines record as text values, or (error type, message)."""
    try:
        obj, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError) as exc:
        return INVALID_JSON, f"invalid JSON: {exc}"
    if end != len(text):
        return INVALID_JSON, f"invalid JSON: extra data at character {end + 1}"
    if type(obj) is not dict:
        return NOT_AN_OBJECT, f"a JSON {type(obj).__name__}, not an object"
    row = list(map(obj.get, names))
    if not _PLAIN.issuperset(map(type, row)):
        row = [v if v is None or type(v) is str else _json_text(v) for v in row]
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and _SURROGATE.search(_json_text(obj)):
        return INVALID_ENCODING, "a \\u escape of an unpaired surrogate"
    return row


def _json_text(value: Any) -> str:
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


# --- Parquet -------------------------------------------------------------------------------------


def _parquet_batches(raw: IO[bytes], spec: _Spec, limits: _Limits) -> Iterator[ReadBatch]:
    if not raw.read(1):  # a 0-byte part file is empty in every format (README: empty files)
        return
    raw.seek(0)
    parquet = pq.ParquetFile(raw)
    present = set(parquet.schema_arrow.names)
    missing = [c for c in spec.required if c not in present]
    if missing:
        raise ExtractReadError(spec.file, f"lacks required column(s) {', '.join(missing)}")
    wanted = [c for c in spec.names if c in present]
    first = 1
    for record_batch in parquet.iter_batches(batch_size=limits.rows, columns=wanted):
        n = record_batch.num_rows
        arrays = [
            _to_text(record_batch.column(c), spec.file, c) if c in present else pa.nulls(n, _STRING)
            for c in spec.names
        ]
        table = pa.Table.from_arrays(arrays, names=list(spec.names))
        for piece in _split_by_bytes(table, limits.chars):
            last = first + piece.num_rows - 1
            yield ReadBatch(spec.file, piece, np.arange(first, last + 1, dtype=np.int64), [], last)
            first = last + 1


def _to_text(array: pa.Array, file: str, column: str) -> pa.Array:
    """One Parquet column as text, exactly (no float detour for decimals, UTC for instants)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _to_text(array.dictionary_decode(), file, column)
    if pa.types.is_null(kind):
        return pa.nulls(len(array), _STRING)
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            return pc.strftime(array, format="%Y-%m-%dT%H:%M:%S")
        return pc.strftime(array.cast(pa.timestamp(kind.unit, "UTC")), format="%Y-%m-%dT%H:%M:%SZ")
    if pa.types.is_nested(kind):
        return _nested_json(array)
    try:
        text = array.cast(_STRING)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            text.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ExtractReadError(file, f"column {column} ({kind}) has no text form: {exc}") from exc
    return text


class _NoFastPath(Exception):
    """A nested type the vectorised JSON writer does not cover; Python writes it instead."""


def _nested_json(array: pa.Array) -> pa.Array:
    """Nested values as compact JSON, in Arrow compute where it can (30x faster than Python)."""
    try:
        return _json_array(array)
    except _NoFastPath:
        return pa.array([None if v is None else _json_text(v) for v in array.to_pylist()], _STRING)


def _json_array(array: pa.Array) -> pa.Array:
    """JSON text of each value (null where the value is null), as ``_json_text`` would write it."""
    kind = array.type
    if pa.types.is_struct(kind) and kind.num_fields:
        children = [_json_array(child).fill_null("null") for child in array.flatten()]
        names = [json.dumps(field.name, ensure_ascii=False) + ":" for field in kind]
        parts = [
            p
            for i, (name, child) in enumerate(zip(names, children, strict=True))
            for p in (("{" if i == 0 else ",") + name, child)
        ]
        return _keep_nulls(pc.binary_join_element_wise(*parts, "}", ""), array)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        values = _json_array(array.values).fill_null("null")
        lists = type(array).from_arrays(array.offsets, values)
        return _keep_nulls(pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", ""), array)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if pc.any(pc.match_substring_regex(array, r'["\\\x00-\x1f]')).as_py():
            raise _NoFastPath
        return pc.binary_join_element_wise('"', array.cast(_STRING), '"', "")
    if pa.types.is_decimal(kind):
        return pc.binary_join_element_wise('"', array.cast(_STRING), '"', "")
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return array.cast(_STRING)
    raise _NoFastPath


def _keep_nulls(text: pa.Array, array: pa.Array) -> pa.Array:
    if not array.null_count:
        return text
    return pc.if_else(array.is_null(), pa.scalar(None, _STRING), text)


def _split_by_bytes(table: pa.Table, budget: int) -> Iterator[pa.Table]:
    """Cut after the row that makes the text exceed ``budget``, like the text formats do."""
    if table.nbytes <= budget:
        yield table
        return
    sizes = sum(pc.binary_length(col).fill_null(0).to_numpy().astype(np.int64) for col in table.columns)
    ends = np.cumsum(sizes)
    start = 0
    while start < table.num_rows:
        base = ends[start - 1] if start else 0
        stop = min(int(np.searchsorted(ends, base + budget, side="right")) + 1, table.num_rows)
        yield table.slice(start, stop - start)
        start = stop
