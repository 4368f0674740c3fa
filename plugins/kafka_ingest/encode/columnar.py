"""Column-wise Avro encoding of Arrow tables: fastavro's bytes, several times faster.

Encoding record by record with fastavro (~100k records/s) is the floor of a row-by-row producer,
while librdkafka queues ~1M messages/s. :class:`ColumnarAvroEncoder` removes that floor: every
column is encoded at once with numpy (zigzag varints, string bodies taken straight from Arrow's
offset/data buffers, decimal two's-complement bytes), per-row sizes are summed into per-row
offsets, and each column is scattered once into a single zeroed buffer.

fastavro stays the reference: the bytes are identical to ``schemaless_writer`` of
``table.to_pylist()`` behind the Confluent header. A schema construct this module does not cover
raises :class:`UnsupportedSchema` at construction, and a table whose Arrow types do not fit the
schema raises :class:`UnsupportedColumn` (a subclass) from :meth:`~ColumnarAvroEncoder.encode_table`,
so one ``except UnsupportedSchema`` lets the caller fall back to
:class:`~kafka_ingest.encode.avro.AvroEncoder`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kafka_ingest.encode.wire import HEADER_SIZE, wire_header

#: ``x`` needs ``1 + searchsorted(_VARINT_LIMITS, x, "right")`` varint bytes.
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
#: fastavro writes ``(bit_length(|x|) + 8) // 8`` decimal bytes: ``1 + searchsorted(_BYTE_LIMITS, |x|)``.
_BYTE_LIMITS = np.array([1 << (8 * k - 1) for k in range(1, 9)], dtype=np.uint64)
_TIMESTAMP_UNITS = ("s", "ms", "us")  # "ns" falls back: what to_pylist() gives then depends on pandas
#: Logical types fastavro passes through unchanged when the value is already an integer.
_INTEGER_LOGICAL = {None, "date", "time-millis", "time-micros", "timestamp-micros"}
_INTEGER_LOGICAL |= {"local-timestamp-millis", "local-timestamp-micros", "timestamp-millis"}

#: Which slots of an array hold a value to encode (``None``: all). Inactive slots (the null branch
#: of a union, items of a null list) get size 0 and are never written.
Active = np.ndarray | None
Failures = list["_Failure"]


class UnsupportedSchema(ValueError):
    """The schema uses a construct this encoder does not cover: encode with fastavro instead."""


class UnsupportedColumn(UnsupportedSchema):
    """A column's Arrow type does not fit its schema field: encode this table with fastavro instead."""


class EncodedTable(NamedTuple):
    """The Confluent-framed Avro value of every input row, in order, and the rows that failed.

    ``values`` is a ``pa.BinaryArray`` (``LargeBinaryArray`` past 2 GiB) over one contiguous
    buffer; a row in ``errors`` is null there. ``errors`` holds ``(position, error_type, message)``
    sorted by position, one per failed row (its first failing field in schema order); the message
    names the field and the problem, never the value.
    """

    values: pa.Array
    errors: list[tuple[int, str, str]]

    # Zero-copy consumers may read ``values.buffers()`` (offsets, data) directly; a failed row's
    # range there holds partial bytes, so check ``errors`` (or the validity) first.

    def to_pylist(self) -> list[bytes | None]:
        """One ``bytes`` per row (``None`` for failed rows), as ``Producer.produce(value=...)`` wants.

        The fastest way found (docs/performance.md); ``produce()`` refuses memoryviews.
        """
        values: list[bytes | None] = self.values.to_pylist()
        return values


@dataclass(frozen=True)
class _Failure:
    mask: np.ndarray  # bool per slot
    error_type: str
    message: str


@dataclass
class _Measured:
    """A column measured and ready to write: bytes per slot, then a writer given each slot's start."""

    sizes: np.ndarray
    write: Callable[[np.ndarray, np.ndarray], None]
    failures: Failures = field(default_factory=list)


class ColumnarAvroEncoder:
    """Encodes Arrow tables shaped like one Avro record schema, for one registry schema id.

    The schema is compiled into a plan of column encoders once; :meth:`encode_table` then costs a
    few dozen numpy passes per column, whatever the number of rows. Columns are matched to fields
    by name (extra columns are ignored; a missing one takes the field's default).
    """

    def __init__(self, parsed_schema: dict[str, Any], schema_id: int) -> None:
        header = wire_header(schema_id)
        if not isinstance(parsed_schema, dict) or parsed_schema.get("type") != "record":
            raise UnsupportedSchema("the top-level schema must be a record")
        self.schema_id = schema_id
        self._header = np.frombuffer(header, dtype=np.uint8)
        named = dict(parsed_schema.get("__named_schemas", {}))
        self._root = _Compiler(named).record(parsed_schema, "")

    def encode_table(self, table: pa.Table) -> EncodedTable:
        """Encode every row; a row that cannot be encoded is null in ``values`` and listed in ``errors``."""
        n = table.num_rows
        prepared = self._root.prepare_columns(lambda name: _table_column(table, name), n, None)
        sizes = prepared.sizes + HEADER_SIZE
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        starts = offsets[:-1]
        # Zero bytes (the null branch of ["null", X], the end of an array) are never written.
        out = np.zeros(int(offsets[-1]), dtype=np.uint8)
        out[starts[:, None] + np.arange(1, HEADER_SIZE)] = self._header[1:]
        prepared.write(out, starts + HEADER_SIZE)
        errors, failed = _row_errors(prepared.failures, n)
        return EncodedTable(_binary_array(out, offsets, failed), errors)


# --------------------------------------------------------------------------- compiling a plan


class _Compiler:
    """Turns a fastavro-parsed schema into column encoders; anything uncovered is UnsupportedSchema."""

    def __init__(self, named: dict[str, Any]) -> None:
        self._named = named
        self._open_records: set[str] = set()

    def node(self, schema: Any, path: str) -> _Node:
        if isinstance(schema, str) and schema in self._named:
            return self.node(self._named[schema], path)
        if isinstance(schema, list):
            return self._union(schema, path)
        kind, logical = (
            (schema, None) if isinstance(schema, str) else (schema["type"], schema.get("logicalType"))
        )
        label = _label(schema)
        if kind == "record":
            return self.record(schema, path)
        if kind == "enum":
            return _EnumNode(path, label, list(schema["symbols"]))
        if kind == "array":
            return _ArrayNode(path, label, self.node(schema["items"], path))
        if kind == "bytes" and logical == "decimal":
            return _DecimalNode(path, label, int(schema["precision"]), int(schema.get("scale", 0)))
        if kind in ("int", "long") and logical in _INTEGER_LOGICAL:
            return _IntegerNode(path, label, timestamps=kind == "long" and logical == "timestamp-millis")
        if kind in _SIMPLE and logical is None:
            return _SIMPLE[kind](path, label)
        raise UnsupportedSchema(f"field '{path}': {label} is not supported by the columnar encoder")

    def record(self, schema: dict[str, Any], path: str) -> _RecordNode:
        name = schema["name"]
        if name in self._open_records:
            raise UnsupportedSchema(f"field '{path}': recursive record {name} is not supported")
        self._open_records.add(name)
        try:
            fields = [(f["name"], self.node(f["type"], _join(path, f["name"])), f) for f in schema["fields"]]
        finally:
            self._open_records.discard(name)
        return _RecordNode(path, _label(schema), fields, self._named)

    def _union(self, branches: list[Any], path: str) -> _Node:
        if len(branches) != 2 or "null" not in branches or branches[0] == branches[1]:
            raise UnsupportedSchema(f"field '{path}': only two-branch unions with null are supported")
        null_index = branches.index("null")
        value = self.node(branches[1 - null_index], path)
        return _UnionNode(path, _label(branches), value, null_index)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _label(schema: Any) -> str:
    """A short, value-free name for an Avro type, for messages."""
    if isinstance(schema, list):
        return " | ".join(_label(s) for s in schema)
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "decimal":
        return f"decimal({schema.get('precision')},{schema.get('scale', 0)})"
    if logical:
        return str(logical)
    if kind == "array":
        return f"array of {_label(schema['items'])}"
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {str(schema['name']).rsplit('.', 1)[-1]}"
    return _label(kind)


# --------------------------------------------------------------------------- nodes


class _Node:
    """Encodes one schema position for every slot of an Arrow array (rows, or list items)."""

    def __init__(self, path: str, label: str) -> None:
        self.path = path
        self.label = label

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        raise NotImplementedError

    def failure(self, mask: np.ndarray | None, error_type: str, problem: str) -> Failures:
        if mask is None or not mask.any():
            return []
        return [_Failure(mask, error_type, f"field '{self.path}' ({self.label}): {problem}")]

    def null_failures(self, array: pa.Array, active: Active) -> Failures:
        """Nulls where the schema has no null branch: fastavro rejects them."""
        valid = _validity(array)
        if valid is None:
            return []
        return self.failure(_both(active, ~valid), "type_mismatch", "null where the schema allows none")

    def unsupported(self, array: pa.Array) -> UnsupportedColumn:
        return UnsupportedColumn(
            f"field '{self.path}' ({self.label}) cannot be encoded from Arrow {array.type}"
        )


class _VarintNode(_Node):
    """Types written as one zigzag varint; subclasses turn the column into int64 values."""

    def values(self, array: pa.Array, active: Active) -> tuple[np.ndarray, Failures]:
        raise NotImplementedError

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        values, failures = self.values(array, active)
        zigzag = ((values << 1) ^ (values >> 63)).view(np.uint64)
        sizes = _inactive_zero(_varint_sizes(zigzag), active)
        chosen = _chosen(zigzag, active)

        def write(out: np.ndarray, starts: np.ndarray) -> None:
            _write_varints(out, _chosen(starts, active), chosen)

        return _Measured(sizes, write, self.null_failures(array, active) + failures)


class _IntegerNode(_VarintNode):
    """``int``/``long`` from Arrow integers; ``timestamp-millis`` also from zoned Arrow timestamps."""

    def __init__(self, path: str, label: str, *, timestamps: bool) -> None:
        super().__init__(path, label)
        self.timestamps = timestamps

    def values(self, array: pa.Array, active: Active) -> tuple[np.ndarray, Failures]:
        kind = array.type
        if self.timestamps and pa.types.is_timestamp(kind) and kind.tz and kind.unit in _TIMESTAMP_UNITS:
            return _epoch_millis(array), []
        if not pa.types.is_integer(kind):
            raise self.unsupported(array)
        raw = _fixed_width(array, np.dtype(kind.to_pandas_dtype()))
        if kind != pa.uint64():
            return raw.astype(np.int64), []
        too_big = _both(_both(active, _validity(array)), raw > np.iinfo(np.int64).max)
        return raw.view(np.int64), self.failure(
            too_big, "out_of_range", "integer out of range for the Avro type"
        )


def _epoch_millis(array: pa.Array) -> np.ndarray:
    """What fastavro computes from the zoned datetime ``to_pylist()`` gives: floor to milliseconds."""
    values = _fixed_width(array, np.dtype(np.int64))
    if array.type.unit == "s":
        return values * 1000
    return values // 1000 if array.type.unit == "us" else values


class _EnumNode(_VarintNode):
    """Enum symbols from Arrow strings or dictionaries, as the symbol's index."""

    def __init__(self, path: str, label: str, symbols: list[str]) -> None:
        super().__init__(path, label)
        self.symbols = symbols

    def values(self, array: pa.Array, active: Active) -> tuple[np.ndarray, Failures]:
        kind = array.type.value_type if pa.types.is_dictionary(array.type) else array.type
        if not _is_text(kind):
            raise self.unsupported(array)
        index = pc.index_in(array, value_set=pa.array(self.symbols, type=kind))
        if index.null_count == array.null_count:
            return _filled_int64(index), []
        unknown = _both(_both(active, _validity(array)), ~_validity_or_all(index))
        return _filled_int64(index), self.failure(
            unknown, "enum_symbol", "value is not one of the enum's symbols"
        )


class _FixedNode(_Node):
    """Types of a fixed byte width (boolean, float, double): one little-endian matrix per column."""

    def matrix(self, array: pa.Array) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        matrix = _chosen(self.matrix(array), active)
        width = matrix.shape[1]
        sizes = _inactive_zero(np.full(len(array), width, dtype=np.int64), active)

        def write(out: np.ndarray, starts: np.ndarray) -> None:
            out[_chosen(starts, active)[:, None] + np.arange(width)] = matrix

        return _Measured(sizes, write, self.null_failures(array, active))


class _BooleanNode(_FixedNode):
    def matrix(self, array: pa.Array) -> np.ndarray:
        if not pa.types.is_boolean(array.type):
            raise self.unsupported(array)
        return pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(np.uint8)[:, None]


class _FloatNode(_FixedNode):
    dtype: np.dtype[Any] = np.dtype("<f4")

    def matrix(self, array: pa.Array) -> np.ndarray:
        if not pa.types.is_floating(array.type):
            raise self.unsupported(array)
        raw = _fixed_width(array, np.dtype(array.type.to_pandas_dtype()))
        with np.errstate(over="ignore"):  # fastavro's C cast also overflows to infinity
            return raw.astype(self.dtype).view(np.uint8).reshape(len(raw), self.dtype.itemsize)


class _DoubleNode(_FloatNode):
    dtype: np.dtype[Any] = np.dtype("<f8")


class _BinaryNode(_Node):
    """``string`` (from Arrow strings) or ``bytes`` (from Arrow binaries): length varint, then body."""

    def accepts(self, kind: pa.DataType) -> bool:
        return _is_text(kind)

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        array = self._plain(array)
        offsets, data = _binary_buffers(array)
        lengths = np.diff(offsets)
        zigzag = (lengths << 1).view(np.uint64)
        heads = _varint_sizes(zigzag)
        sizes = _inactive_zero(heads + lengths, active)

        def write(out: np.ndarray, starts: np.ndarray) -> None:
            _write_varints(out, _chosen(starts, active), _chosen(zigzag, active))
            _scatter_bodies(out, starts + heads, offsets, active, data)

        return _Measured(sizes, write, self.null_failures(array, active))

    def _plain(self, array: pa.Array) -> pa.Array:
        """Dictionary and view layouts as a plain (large) string/binary array with offsets."""
        kind = array.type.value_type if pa.types.is_dictionary(array.type) else array.type
        if not self.accepts(kind):
            raise self.unsupported(array)
        if array.type in (pa.string(), pa.large_string(), pa.binary(), pa.large_binary()):
            return array
        return array.cast(pa.large_binary() if _is_binary(kind) else pa.large_string())


class _BytesNode(_BinaryNode):
    def accepts(self, kind: pa.DataType) -> bool:
        return _is_binary(kind)


_SIMPLE: dict[str, Callable[[str, str], _Node]] = {
    "string": _BinaryNode,
    "bytes": _BytesNode,
    "boolean": _BooleanNode,
    "float": _FloatNode,
    "double": _DoubleNode,
}


class _DecimalNode(_Node):
    """``bytes``/``decimal`` from Arrow decimals, as fastavro writes it: a length varint, then
    ``(bit_length(|unscaled|) + 8) // 8`` big-endian two's-complement bytes of the value rescaled
    to the schema's scale; more digits than the precision, or more decimal places than the scale,
    fail the row."""

    def __init__(self, path: str, label: str, precision: int, scale: int) -> None:
        super().__init__(path, label)
        self.precision = precision
        self.scale = scale

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        array = self._decimal128(array)
        checked = _both(active, _validity(array))
        failures = self.null_failures(array, active)
        failures += self.failure(
            _both(checked, _at_least(array, 10**self.precision)),
            "decimal_precision",
            "more digits than the precision",
        )
        if array.type.scale > self.scale:
            failures += self.failure(
                _all(checked, len(array)), "decimal_scale", "more decimal places than the scale"
            )
        elif array.type.scale < self.scale:
            array = self._rescaled(array)
        lengths, matrix = _twos_complement(array)
        sizes = _inactive_zero(lengths + 1, active)
        lengths, matrix = _chosen(lengths, active), _chosen(matrix, active)

        def write(out: np.ndarray, starts: np.ndarray) -> None:
            chosen = _chosen(starts, active)
            out[chosen] = lengths << 1  # at most 17 bytes: the varint is always one byte
            _scatter_tails(out, chosen + 1, matrix, lengths)

        return _Measured(sizes, write, failures)

    def _decimal128(self, array: pa.Array) -> pa.Array:
        if not pa.types.is_decimal(array.type) or array.type.precision > 38:
            raise self.unsupported(array)
        if pa.types.is_decimal128(array.type):
            return array
        return array.cast(pa.decimal128(array.type.precision, array.type.scale))

    def _rescaled(self, array: pa.Array) -> pa.Array:
        """Fewer decimal places than the schema: multiply up, as fastavro does (exact)."""
        precision = array.type.precision + self.scale - array.type.scale
        if precision > 38:
            raise self.unsupported(array)
        try:
            return array.cast(pa.decimal128(precision, self.scale))
        except pa.ArrowInvalid as exc:  # values beyond the column's own declared precision
            raise self.unsupported(array) from exc


class _UnionNode(_Node):
    """``["null", X]`` or ``[X, "null"]``: the branch index, then X for non-null slots."""

    def __init__(self, path: str, label: str, value: _Node, null_index: int) -> None:
        super().__init__(path, label)
        self.value = value
        self.null_index = null_index

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        if pa.types.is_null(array.type):
            return _constant(bytes([self.null_index << 1]), len(array), active)
        valid = _validity(array)
        present = _both(active, valid)
        value = self.value.prepare(array, present)
        sizes = _inactive_zero(value.sizes + 1, active)
        null_byte, value_byte = self.null_index << 1, (1 - self.null_index) << 1

        def write(out: np.ndarray, starts: np.ndarray) -> None:
            out[_chosen(starts, present)] = value_byte
            if null_byte and valid is not None:
                out[_chosen(starts, _both(active, ~valid))] = null_byte
            value.write(out, starts + 1)

        return _Measured(sizes, write, value.failures)


class _ArrayNode(_Node):
    """Arrays from Arrow lists: ``count`` varint and the items when non-empty, then a 0 count."""

    def __init__(self, path: str, label: str, items: _Node) -> None:
        super().__init__(path, label)
        self.items = items

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
            raise self.unsupported(array)
        offsets = _fixed_width(
            array, np.dtype(np.int32 if pa.types.is_list(array.type) else np.int64), extra=1
        ).astype(np.int64)
        present = _both(active, _validity(array))
        spans = np.diff(offsets)
        counts = spans if present is None else np.where(present, spans, 0)
        items = array.values.slice(offsets[0], offsets[-1] - offsets[0])
        prepared = self.items.prepare(items, None if present is None else np.repeat(present, spans))
        ends = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(prepared.sizes, out=ends[1:])
        first = ends[offsets[:-1] - offsets[0]]
        zigzag = (counts << 1).view(np.uint64)
        heads = np.where(counts > 0, _varint_sizes(zigzag), 0)
        sizes = _inactive_zero(heads + ends[offsets[1:] - offsets[0]] - first + 1, active)

        def write(out: np.ndarray, starts: np.ndarray) -> None:
            nonempty = counts > 0
            _write_varints(out, starts[nonempty], zigzag[nonempty])
            prepared.write(out, np.repeat(starts + heads - first, spans) + ends[:-1])

        failures = self.null_failures(array, active) + _per_row(prepared.failures, spans)
        return _Measured(sizes, write, failures)


class _RecordNode(_Node):
    """Records from Arrow structs (or, at the top, a table): the fields' encodings in schema order."""

    def __init__(
        self, path: str, label: str, fields: list[tuple[str, _Node, dict[str, Any]]], named: dict[str, Any]
    ) -> None:
        super().__init__(path, label)
        self.fields = fields
        self._named = named
        self._defaults: dict[str, bytes] = {}

    def prepare(self, array: pa.Array, active: Active) -> _Measured:
        if not pa.types.is_struct(array.type):
            raise self.unsupported(array)
        present = _both(active, _validity(array))
        prepared = self.prepare_columns(lambda name: _struct_field(array, name), len(array), present)
        prepared.failures[:0] = self.null_failures(array, active)
        return prepared

    def prepare_columns(self, column: Callable[[str], pa.Array | None], n: int, active: Active) -> _Measured:
        parts = [
            self._prepare_field(name, node, spec, column(name), n, active) for name, node, spec in self.fields
        ]
        sizes = np.zeros(n, dtype=np.int64)
        for part in parts:
            sizes += part.sizes

        def write(out: np.ndarray, starts: np.ndarray) -> None:
            position = starts.copy()
            for part in parts:
                part.write(out, position)
                position += part.sizes

        return _Measured(sizes, write, [f for part in parts for f in part.failures])

    def _prepare_field(
        self, name: str, node: _Node, spec: dict[str, Any], array: pa.Array | None, n: int, active: Active
    ) -> _Measured:
        if array is not None and (isinstance(node, _UnionNode) or not pa.types.is_null(array.type)):
            return node.prepare(array, active)
        if array is not None:  # an all-null column of Arrow's null type
            failures = node.failure(_all(active, n), "type_mismatch", "null where the schema allows none")
            return _Measured(np.zeros(n, dtype=np.int64), lambda out, starts: None, failures)
        if "default" not in spec:
            failures = node.failure(
                _all(active, n), "missing_field", f"'{name}' is missing and has no default"
            )
            return _Measured(np.zeros(n, dtype=np.int64), lambda out, starts: None, failures)
        return _constant(self._default(spec), n, active)

    def _default(self, spec: dict[str, Any]) -> bytes:
        """A missing column takes the field's default, encoded once by fastavro itself."""
        if spec["name"] not in self._defaults:
            probe = {"type": "record", "name": "__columnar_default_probe", "fields": [spec]}
            parsed = fastavro.parse_schema(probe, named_schemas=dict(self._named))
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, parsed, {})
            self._defaults[spec["name"]] = buffer.getvalue()
        return self._defaults[spec["name"]]


def _constant(value: bytes, n: int, active: Active) -> _Measured:
    pattern = np.frombuffer(value, dtype=np.uint8)
    sizes = _inactive_zero(np.full(n, len(value), dtype=np.int64), active)

    def write(out: np.ndarray, starts: np.ndarray) -> None:
        out[_chosen(starts, active)[:, None] + np.arange(len(value))] = pattern

    return _Measured(sizes, write)


# --------------------------------------------------------------------------- numpy kernels


def _varint_sizes(zigzag: np.ndarray) -> np.ndarray:
    """Bytes of each unsigned varint; one fill when the column's smallest and largest agree."""
    if len(zigzag) == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = _varint_size(int(zigzag.min())), _varint_size(int(zigzag.max()))
    if low == high:
        return np.full(len(zigzag), low, dtype=np.int64)
    return np.searchsorted(_VARINT_LIMITS, zigzag, side="right").astype(np.int64) + 1


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _write_varints(out: np.ndarray, starts: np.ndarray, zigzag: np.ndarray) -> None:
    """Seven bits per byte, low first, the high bit set while more follow; one pass per byte."""
    while len(starts):
        rest = zigzag >> np.uint64(7)
        more = rest != 0
        out[starts] = (zigzag & np.uint64(0x7F)) | (more.astype(np.uint64) << np.uint64(7))
        if more.all():
            starts, zigzag = starts + 1, rest
        else:
            starts, zigzag = starts[more] + 1, rest[more]


def _scatter_bodies(
    out: np.ndarray, starts: np.ndarray, offsets: np.ndarray, active: Active, data: np.ndarray
) -> None:
    """Copy each active slot's bytes ``data[offsets[i]:offsets[i+1]]`` to ``out[starts[i]:]``.

    Arrow keeps the bodies back to back, so when every slot is copied the source is one contiguous
    run and only the destination index is built.
    """
    lengths = np.diff(offsets)
    if active is not None and lengths[~active].any():
        chosen = np.flatnonzero(active)
        sources = _spread(offsets[chosen], lengths[chosen])
        out[_spread(starts[chosen], lengths[chosen])] = data[sources]
        return
    begin, end = offsets[0], offsets[-1]
    if end > begin:
        destination = np.repeat(starts - offsets[:-1], lengths)
        destination += np.arange(begin, end)
        out[destination] = data[begin:end]


def _spread(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concat(range(s, s + n) for s, n in zip(starts, lengths))``, without a Python loop."""
    ends = np.cumsum(lengths)
    spread = np.repeat(starts - (ends - lengths), lengths)
    spread += np.arange(int(ends[-1]) if len(ends) else 0)
    return spread


def _twos_complement(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per value: fastavro's byte count and a big-endian, sign-extended byte matrix.

    The last ``count`` bytes of a row are the value. 8-byte words suffice unless a value needs the
    high half of the 128-bit decimal.
    """
    words = _fixed_width(array, np.dtype("<i8"), width=2)
    low, high = words[:, 0], words[:, 1]
    if np.array_equal(high, low >> 63):
        sign = (low >> 63).astype(np.uint8)
        magnitude = np.where(low < 0, -low, low).view(np.uint64)  # -(-2**63) wraps to 2**63: right
        lengths = np.searchsorted(_BYTE_LIMITS, magnitude, side="right").astype(np.int64) + 1
        return lengths, np.column_stack([sign, low.astype(">i8").view(np.uint8).reshape(-1, 8)])
    magnitude_low, magnitude_high = _magnitude128(low.view(np.uint64), high)
    short = np.searchsorted(_BYTE_LIMITS, magnitude_low, side="right") + 1
    long_ = np.searchsorted(_BYTE_LIMITS, magnitude_high, side="right") + 9
    lengths = np.where(magnitude_high == 0, short, long_).astype(np.int64)
    big_endian = np.column_stack(
        [
            (high >> 63).astype(np.uint8),
            high.astype(">i8").view(np.uint8).reshape(-1, 8),
            low.astype(">i8").view(np.uint8).reshape(-1, 8),
        ]
    )
    return lengths, big_endian


def _magnitude128(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|x| of 128-bit two's-complement values as (low, high) unsigned words."""
    negative = high < 0
    flipped_low = ~low + np.uint64(1)
    carry = (flipped_low == 0).astype(np.uint64)
    flipped_high = ~high.view(np.uint64) + carry
    return np.where(negative, flipped_low, low), np.where(negative, flipped_high, high.view(np.uint64))


def _at_least(array: pa.Array, bound: int) -> np.ndarray:
    """|unscaled value| >= bound, for a decimal128 array (garbage in null slots is masked later)."""
    words = _fixed_width(array, np.dtype("<i8"), width=2)
    low, high = _magnitude128(words[:, 0].view(np.uint64), words[:, 1])
    if bound >= 1 << 128:
        return np.zeros(len(array), dtype=bool)
    bound_high, bound_low = np.uint64(bound >> 64), np.uint64(bound & ((1 << 64) - 1))
    return (high > bound_high) | ((high == bound_high) & (low >= bound_low))


def _scatter_tails(out: np.ndarray, starts: np.ndarray, matrix: np.ndarray, lengths: np.ndarray) -> None:
    """Copy the last ``lengths[i]`` bytes of row ``i`` of ``matrix`` to ``out[starts[i]:]``."""
    width = matrix.shape[1]
    rows = np.arange(len(lengths)) * width + width - lengths
    out[_spread(starts, lengths)] = matrix.reshape(-1)[_spread(rows, lengths)]


# --------------------------------------------------------------------------- Arrow plumbing


def _table_column(table: pa.Table, name: str) -> pa.Array | None:
    """One column as a single array: zero-copy for one chunk, concatenated for several."""
    if name not in table.column_names:
        return None
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _struct_field(array: pa.Array, name: str) -> pa.Array | None:
    index = array.type.get_field_index(name)
    return None if index < 0 else array.field(index)  # field() applies the struct's slice offset


def _fixed_width(array: pa.Array, dtype: np.dtype, *, extra: int = 0, width: int = 1) -> np.ndarray:
    """The values buffer as numpy, zero-copy, honouring the array's slice offset (nulls hold garbage)."""
    count = len(array) + extra
    if array.buffers()[1] is None:
        return np.zeros((count, width) if width > 1 else count, dtype=dtype)
    flat = np.frombuffer(array.buffers()[1], dtype=dtype)
    if width > 1:
        return flat.reshape(-1, width)[array.offset : array.offset + count]
    return flat[array.offset : array.offset + count]


def _binary_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """int64 offsets (``len + 1``, absolute into data) and the uint8 data of a string/binary array."""
    large = array.type in (pa.large_string(), pa.large_binary())
    offsets = _fixed_width(array, np.dtype(np.int64 if large else np.int32), extra=1).astype(np.int64)
    buffer = array.buffers()[2]
    data = np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _validity(array: pa.Array) -> np.ndarray | None:
    """Which slots are non-null (``None`` when all are): the only place nulls are looked at."""
    if array.null_count == 0:
        return None
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _validity_or_all(array: pa.Array) -> np.ndarray:
    valid = _validity(array)
    return np.ones(len(array), dtype=bool) if valid is None else valid


def _filled_int64(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


def _is_binary(kind: pa.DataType) -> bool:
    return bool(pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind))


def _both(first: Active, second: Active) -> Active:
    if first is None:
        return second
    if second is None:
        return first
    return first & second


def _all(active: Active, n: int) -> np.ndarray:
    return np.ones(n, dtype=bool) if active is None else active


def _chosen(values: np.ndarray, active: Active) -> np.ndarray:
    return values if active is None else values[active]


def _inactive_zero(sizes: np.ndarray, active: Active) -> np.ndarray:
    if active is not None:
        sizes[~active] = 0
    return sizes


def _per_row(failures: Failures, spans: np.ndarray) -> Failures:
    """Item-level failures of a list column as failures of the rows holding those items."""
    if not failures:
        return []
    row_of_item = np.repeat(np.arange(len(spans)), spans)
    lifted = []
    for failure in failures:
        rows = np.zeros(len(spans), dtype=bool)
        rows[row_of_item[failure.mask]] = True
        lifted.append(_Failure(rows, failure.error_type, failure.message))
    return lifted


def _row_errors(failures: Failures, n: int) -> tuple[list[tuple[int, str, str]], np.ndarray]:
    """One error per failed row, its first failing field in schema order, sorted by position."""
    failed = np.zeros(n, dtype=bool)
    errors: list[tuple[int, str, str]] = []
    for failure in failures:
        new = failure.mask & ~failed
        errors += [(int(p), failure.error_type, failure.message) for p in np.flatnonzero(new)]
        failed |= new
    errors.sort(key=lambda error: error[0])
    return errors, failed


def _binary_array(out: np.ndarray, offsets: np.ndarray, failed: np.ndarray) -> pa.Array:
    """A (large) binary array over the one buffer; failed rows are null (their bytes are garbage)."""
    large = len(out) >= 2**31
    kind, offset_type = (pa.large_binary(), np.int64) if large else (pa.binary(), np.int32)
    validity = pa.py_buffer(np.packbits(~failed, bitorder="little")) if failed.any() else None
    buffers = [validity, pa.py_buffer(offsets.astype(offset_type)), pa.py_buffer(out)]
    return pa.Array.from_buffers(kind, len(failed), buffers, null_count=int(failed.sum()))
