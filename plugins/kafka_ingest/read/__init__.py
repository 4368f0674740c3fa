"""Extract files -> bounded Arrow batches: CSV, JSON Lines and Parquet, gzip, local or fsspec.

The reader is the first stage of the pipeline and knows nothing about Airflow, so the core can be
tested and benchmarked without a scheduler. It streams one file into :class:`ReadBatch` objects;
memory is bounded by the batch limits and the field size limit, whatever the file's size.

The contract every format keeps (``read/formats/``; where EXTRACTS.md is silent, decided here):

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
- **Nested columns** (``json_columns``): CSV carries them as JSON text, and JSONL and Parquet turn
  every nested value into JSON. Whoever parses that JSON must accept a number *or* a numeric
  string for a nested number (CSV passes upstream's text through, JSONL writes strings, Parquet
  writes integers as numbers and decimals as strings).
- Which records are rejected never depends on the columns asked for (undecodable bytes anywhere
  in a CSV line or JSON object reject it), so a key-only scan numbers and skips exactly the rows a
  full read does.
- A file that cannot be read at all (missing, corrupt gzip, deleted mid-read, corrupt Parquet)
  raises :class:`ExtractReadError` naming the file, when it is met: batches already yielded stay
  valid, and the caller must not treat the file as done.

Each format's own decisions are in its module's docstring.
"""

from __future__ import annotations

from kafka_ingest.read.batching import FIELD_SIZE_LIMIT
from kafka_ingest.read.files import (
    ExtractPath,
    ExtractReadError,
    PinnedFile,
    check_unchanged,
    file_name,
    file_state,
    fingerprint,
    pinned,
)
from kafka_ingest.read.formats.csv import BAD_QUOTING, FIELD_TOO_LARGE, WRONG_FIELD_COUNT
from kafka_ingest.read.formats.jsonl import INVALID_JSON, NOT_AN_OBJECT
from kafka_ingest.read.listing import list_part_files, resolve_extract_files
from kafka_ingest.read.registry import FORMATS, detect_format, read_extract
from kafka_ingest.read.text import INVALID_ENCODING, LINE_TOO_LONG

__all__ = [
    "BAD_QUOTING",
    "FIELD_SIZE_LIMIT",
    "FIELD_TOO_LARGE",
    "FORMATS",
    "INVALID_ENCODING",
    "INVALID_JSON",
    "LINE_TOO_LONG",
    "NOT_AN_OBJECT",
    "WRONG_FIELD_COUNT",
    "ExtractPath",
    "ExtractReadError",
    "PinnedFile",
    "check_unchanged",
    "detect_format",
    "file_name",
    "file_state",
    "fingerprint",
    "list_part_files",
    "pinned",
    "read_extract",
    "resolve_extract_files",
]
