"""Parquet: values become text, exactly (no float detour for decimals, UTC for instants).

Decimals keep their scale (``12.50``), timestamps with a time zone become ISO 8601 UTC with ``Z``
and the unit's precision; timestamps *without* a time zone become ISO 8601 without an offset,
which the contract treats as invalid, so the validator rejects them; nested values become JSON
(decimals as JSON strings, integers as numbers). Rows are numbered by their 1-based index. A
0-byte file yields no batch, like an empty CSV; a corrupt file, invalid UTF-8 in a string column
or a type with no text form fails the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read.batching import STRING, Limits, ReadSpec
from kafka_ingest.read.files import ExtractReadError
from kafka_ingest.read.text import json_text


def read_parquet(raw: IO[bytes], spec: ReadSpec, limits: Limits) -> Iterator[ReadBatch]:
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
            _to_text(record_batch.column(c), spec.file, c) if c in present else pa.nulls(n, STRING)
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
        return pa.nulls(len(array), STRING)
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            return pc.strftime(array, format="%Y-%m-%dT%H:%M:%S")
        return pc.strftime(array.cast(pa.timestamp(kind.unit, "UTC")), format="%Y-%m-%dT%H:%M:%SZ")
    if pa.types.is_nested(kind):
        return _nested_json(array)
    try:
        text = array.cast(STRING)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            text.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ExtractReadError(file, f"column {column} ({kind}) has no text form: {exc}") from exc
    return text


class _NoFastPath(Exception):
    """A nested type the vectorised JSON writer does not cover; Python writes it instead."""


def _nested_json(array: pa.Array) -> pa.Array:
    """Nested values as compact JSON, in Arrow compute where it can (much faster than Python)."""
    try:
        return _json_array(array)
    except _NoFastPath:
        return pa.array([None if v is None else json_text(v) for v in array.to_pylist()], STRING)


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
        return pc.binary_join_element_wise('"', array.cast(STRING), '"', "")
    if pa.types.is_decimal(kind):
        return pc.binary_join_element_wise('"', array.cast(STRING), '"', "")
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return array.cast(STRING)
    raise _NoFastPath


def _keep_nulls(text: pa.Array, array: pa.Array) -> pa.Array:
    if not array.null_count:
        return text
    return pc.if_else(array.is_null(), pa.scalar(None, STRING), text)


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
