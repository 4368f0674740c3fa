"""fastavro, record by record: the reference encoder every faster path is held to.

The bytes are the same as confluent-kafka's ``AvroSerializer`` would produce for the same schema
id. A record that cannot be encoded is reported with its field and problem, never its value (a
value may be cardholder data).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kafka_ingest.encode.wire import wire_header
from kafka_ingest.registry import LoadedSchema, describe_type

#: fastavro error texts that carry no record value -> (error_type, problem). Anything else is
#: reported generically, because some fastavro messages quote the offending value.
_KNOWN_PROBLEMS = tuple(
    (re.compile(pattern), error_type, problem)
    for pattern, error_type, problem in (
        (r"^no value and no default for (\w+)$", "missing_field", "'{0}' is missing and has no default"),
        (r"is not in list$", "enum_symbol", "value is not one of the enum's symbols"),
        (r"^Scale provided in schema does not match", "decimal_scale", "more decimal places than the scale"),
        (r"^The decimal precision is bigger", "decimal_precision", "more digits than the precision"),
        (r"do not match \[[^\]]*\]$", "type_mismatch", "value matches none of the union's types"),
        (r"^must be string$", "type_mismatch", "expected a string"),
        (r"^an integer is required$", "type_mismatch", "expected an integer"),
        (r"^a bytes-like object is required, not '(\w+)'$", "type_mismatch", "expected a Decimal, got {0}"),
        (r"^Python int too large to convert", "out_of_range", "integer out of range for the Avro type"),
        (r"^'(\w+)' object is not iterable$", "type_mismatch", "expected a list or mapping, got {0}"),
    )
)
_ON_FIELD = re.compile(r" on field (\w+)")


class AvroEncoder:
    """Encodes records for one schema id in the Confluent wire format.

    Built once per topic per run: the header and the parsed schema are fixed, one buffer is reused,
    and a record that cannot be encoded is reported with its field and problem but never its value
    (a value may be cardholder data).
    """

    def __init__(self, schema: LoadedSchema, schema_id: int) -> None:
        self.schema = schema
        self.schema_id = schema_id
        self._parsed = schema.parsed
        self._header = wire_header(schema_id)
        self._buffer = io.BytesIO()
        self._buffer.write(self._header)
        self._probes: dict[str, dict[str, Any]] | None = None

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Magic byte, big-endian schema id, then the schemaless Avro body."""
        buffer = self._buffer
        buffer.seek(len(self._header))
        buffer.truncate()
        fastavro.schemaless_writer(buffer, self._parsed, record)
        return buffer.getvalue()

    def encode_batch(
        self, records: Iterable[Mapping[str, Any]]
    ) -> tuple[list[bytes | None], list[tuple[int, str, str]]]:
        """Encode in order; a failing record leaves ``None`` and an (position, type, message) entry.

        One bad record must cost its own row (a DLQ record at stage ``serialize``), not the batch.
        """
        values: list[bytes | None] = []
        errors: list[tuple[int, str, str]] = []
        encode = self.encode
        for position, record in enumerate(records):
            try:
                values.append(encode(record))
            except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
                values.append(None)
                errors.append((position, *self.describe_failure(record, exc)))
        return values, errors

    def encode_table(self, table: pa.Table) -> tuple[list[bytes | None], list[tuple[int, str, str]]]:
        """Encode an Avro-shaped Arrow table row by row: the reference path (see ``encode/table.py``)."""
        return self.encode_batch(records_from_table(table))

    def describe_failure(self, record: Any, exc: Exception) -> tuple[str, str]:
        """Return ``(error_type, message)`` naming the field and the problem, never the value."""
        if not isinstance(record, Mapping):
            return "type_mismatch", f"record is a {type(record).__name__}, not a mapping of fields"
        field, field_exc = self._failing_field(record)
        if field is None or field_exc is None:
            return "encode_error", f"{self.schema.name} rejected by the Avro writer ({type(exc).__name__})"
        error_type, problem = _classify(field_exc)
        path = ".".join(_nested_path(field, field_exc))
        field_type = describe_type(self._field_types()[field])
        return error_type, f"field '{path}' ({field_type}): {problem}"

    def _failing_field(self, record: Mapping[str, Any]) -> tuple[str | None, Exception | None]:
        """Encode each top-level field on its own to find the first one the writer rejects."""
        scratch = io.BytesIO()
        for name, probe in self._field_probes().items():
            single = {name: record[name]} if name in record else {}
            try:
                fastavro.schemaless_writer(scratch, probe, single)
            except Exception as exc:  # diagnosing: any writer failure points at this field
                return name, exc
        return None, None

    def _field_probes(self) -> dict[str, dict[str, Any]]:
        """One-field record schemas, parsed on the first failure only (the happy path never needs them)."""
        if self._probes is None:
            named = self._parsed.get("__named_schemas", {})
            self._probes = {
                field["name"]: _parse_record(
                    {"type": "record", "name": f"{self.schema.name}__probe_{i}", "fields": [field]},
                    named_schemas=dict(named),
                )
                for i, field in enumerate(self._parsed["fields"])
            }
        return self._probes

    def _field_types(self) -> dict[str, Any]:
        return {field["name"]: field["type"] for field in self._parsed["fields"]}


def _parse_record(schema: dict[str, Any], named_schemas: dict[str, Any]) -> dict[str, Any]:
    parsed = fastavro.parse_schema(schema, named_schemas=named_schemas)
    assert isinstance(parsed, dict)
    return parsed


def _classify(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, UnicodeError):
        return "type_mismatch", "text cannot be encoded as UTF-8"
    text = _ON_FIELD.sub("", str(exc))
    for pattern, error_type, problem in _KNOWN_PROBLEMS:
        match = pattern.search(text)
        if match:
            return error_type, problem.format(*match.groups())
    return "encode_error", f"rejected by the Avro writer ({type(exc).__name__})"


def _nested_path(field: str, exc: Exception) -> list[str]:
    """``items.quantity`` from fastavro's innermost-first "on field" chain."""
    path = [field]
    for name in reversed(_ON_FIELD.findall(str(exc))):
        if name != path[-1]:
            path.append(name)
    return path


def records_from_table(table: pa.Table) -> list[dict[str, Any]]:
    """An Avro-shaped Arrow table -> record dicts, column by column.

    Timestamps become epoch milliseconds (what ``timestamp-millis`` stores; fastavro takes them as
    is), decimals ``Decimal``, lists of structs lists of dicts. Converting per column is several
    times faster than ``Table.to_pylist``, which builds a time-zone-aware datetime per value.
    """
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            columns.append(pc.cast(column, pa.int64()).to_pylist())
        elif pa.types.is_list(column.type) and pa.types.is_struct(column.type.value_type):
            columns.append(_struct_lists_to_python(column))
        else:
            columns.append(column.to_pylist())
    names = table.column_names
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _struct_lists_to_python(lists: pa.Array | pa.ChunkedArray) -> list[list[dict[str, Any]]]:
    """Lists of structs -> Python lists of dicts, field by field (about twice ``to_pylist``'s speed)."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    flat = pc.list_flatten(lists)
    names = [field.name for field in lists.type.value_type]
    columns = [pc.struct_field(flat, name).to_pylist() for name in names]
    elements = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    ends = np.cumsum(pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)).tolist()
    return [elements[start:end] for start, end in zip([0, *ends][:-1], ends, strict=True)]
