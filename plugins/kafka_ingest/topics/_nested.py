"""Parse a column of JSON arrays of objects (``items``) in one pass, keeping numbers as their text.

Readers hand nested columns on as JSON text, and a number there may be a JSON number or a JSON
string (``2`` or ``"2"``, ``12.50`` or ``"12.50"``). Money must be judged on its exact text
(``12.345`` and ``1e2`` are invalid, not rounded), so numbers must never pass through a float.

The fast path parses the batch with ``pyarrow.json`` in blocks of :data:`_BLOCK` rows, every row
as one line ``{"v": <text>}``. Each block is first read as it is, with the *integer fields* (those
the caller judges as integers, like ``quantity``) typed int64 and every other field a string:
Arrow reads a JSON integer exactly (a fraction, an exponent or a value beyond int64 fails the
block) and the integer's decimal text is what comes back, so a JSON number never passes through a
float. That read fails when the data is shaped otherwise (a quantity as a JSON string, a price as
a JSON number): the block is then read again with the JSON numbers of the numeric fields first
turned into JSON strings of the same text by one RE2 substitution, and when that read finds no bad
row, the rest of the batch goes straight to it. The substitution can only match a real
``"key": number`` pair: inside a string the pattern cannot occur without the text already being
invalid JSON, so valid text stays valid with the same meaning and invalid text stays invalid. It
costs more than Arrow's parse of the block, which is why it is the second try, not the first.

A block the quoted read rejects (one bad row rejects its block) is halved until the halves parse;
a part of at most :data:`_SMALLEST` rows that still fails is parsed row by row with
``json.loads``, which is the reference: a row the fast path accepts parses identically there (an
integer field's ``-0`` may come back as ``0``, the same integer). Two guards keep it so: a row that
smuggles in a second object (``[...]}{"v": [...]``) changes the row count, and unknown keys are
rejected, so ``[...], "x": 1`` (text after the array) cannot pass as a field of the wrapper. The
price of the second guard: items with keys beyond the requested fields (ignored, as the reference
ignores them) always take the row-by-row path.

Blocks are large because every ``pyarrow`` call releases the GIL and must take it back: beside the
threads that produce records, each retake can wait up to a switch interval (5 ms), which for
1,024-row blocks cost more than the parse itself. Halving keeps one bad row's cost near two parses
of its block instead of a block of ``json.loads``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

_BLOCK = 8192  # rows per pyarrow.json call
_SMALLEST = 64  # a rejected block is halved down to this many rows, then parsed row by row
_BAD = object()


@dataclass(frozen=True)
class JsonLists:
    """A parsed column of JSON arrays of objects.

    :param lists: one list per row (null where the text was absent, JSON ``null`` or invalid), of
        structs with one string field per requested field (null where the key was missing or
        null; a null struct where the element was JSON ``null``).
    :param invalid: rows whose text was present but not a JSON array of objects with the requested
        field types (bad JSON, a scalar element, a non-string text field, a duplicated key).
    """

    lists: pa.ListArray
    invalid: np.ndarray


class _Number(str):
    """A JSON number, kept as its exact source text."""


class _Object(dict[str, Any]):
    """A JSON object that also remembers whether a requested key occurred twice."""

    duplicated: frozenset[str] = frozenset()


def parse_json_lists(
    values: pa.Array,
    text_fields: tuple[str, ...],
    number_fields: tuple[str, ...],
    *,
    integer_fields: tuple[str, ...] = (),
    block: int = _BLOCK,
    smallest: int = _SMALLEST,
) -> JsonLists:
    """Parse each row's JSON text into a list of ``{field: text}`` structs.

    ``text_fields`` must be JSON strings; ``number_fields`` may be JSON numbers or JSON strings and
    come back as their text (``1e2`` stays ``"1e2"``). ``integer_fields`` (some of the number
    fields) are judged as integers by the caller: a JSON integer there comes back as its decimal
    text (``-0`` possibly as ``0``, the same integer). Other keys are ignored. ``block`` and
    ``smallest`` are the fast path's block sizes (tests make them small to exercise the halving).
    """
    fields = text_fields + number_fields
    list_type = pa.list_(pa.struct([(name, pa.string()) for name in fields]))
    parser = _Parser(list_type, text_fields, number_fields, integer_fields, smallest=min(smallest, block))
    values = pc.cast(values, pa.large_string())
    plain = _Lines(_one_object_per_line(values, ()))
    as_typed = True
    pieces = []
    for start in range(0, len(values), block):
        stop = min(start + block, len(values))
        piece = parser.parse_typed(plain, start, stop) if as_typed else None
        if piece is None:
            part = values.slice(start, stop - start)
            quoted = _Lines(_one_object_per_line(part, number_fields))
            piece = parser.parse_block(quoted.body, quoted.offsets, part, 0, stop - start)
            # No row was bad, so the typed parse failed on the data's shape (quantities as JSON
            # strings, prices as JSON numbers): the rest of the batch goes straight to quoting.
            as_typed = as_typed and bool(piece[1].any())
        pieces.append(piece)
    if not pieces:
        return JsonLists(pa.array([], list_type), np.zeros(0, dtype=bool))
    lists = pa.concat_arrays([piece for piece, _ in pieces])
    return JsonLists(lists, np.concatenate([bad for _, bad in pieces]))


class _Lines:
    """A column's rows as one buffer of lines, and where each row's line starts."""

    def __init__(self, lines: pa.Array) -> None:
        self.body = lines.buffers()[2]
        self.offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset :]


def _one_object_per_line(values: pa.Array, number_fields: tuple[str, ...]) -> pa.Array:
    """Each row as the line ``{"v": <text>}\\n``, numbers of ``number_fields`` quoted.

    A raw line break can only be JSON whitespace or an (invalid) character inside a string; a tab
    is the same in both places, so turning breaks into tabs keeps every row on one line.
    """
    text = pc.fill_null(_quote_numbers(values, number_fields), "null")
    if _has_line_break(text):
        text = pc.replace_substring_regex(text, r"[\r\n]", "\t")
    prefix, suffix, separator = (pa.scalar(s, pa.large_string()) for s in ('{"v":', "}\n", ""))
    return pc.binary_join_element_wise(prefix, text, suffix, separator)


def _has_line_break(text: pa.Array) -> bool:
    """Whether any value holds a CR or LF: one numpy pass over the data buffer (a regex match over
    the column cost four times as much)."""
    offsets, data = text.buffers()[1], text.buffers()[2]
    if data is None or not len(text):
        return False
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    ends = np.frombuffer(offsets, width)[text.offset : text.offset + len(text) + 1]
    body = np.frombuffer(data, np.uint8)[int(ends[0]) : int(ends[-1])]
    return bool((body == 10).any() or (body == 13).any())


def _quote_numbers(values: pa.Array, number_fields: tuple[str, ...]) -> pa.Array:
    """Turn ``"field": 12.5`` into ``"field": "12.5"`` for the numeric fields (see module doc)."""
    if not number_fields:
        return values
    keys = "|".join(re.escape(name) for name in number_fields)
    number = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
    pattern = rf'("(?:{keys})"[ \t\r\n]*:[ \t\r\n]*)({number})'
    return pc.replace_substring_regex(values, pattern, r'\1"\2"')


class _Parser:
    def __init__(
        self,
        list_type: pa.DataType,
        text_fields: tuple[str, ...],
        numbers: tuple[str, ...],
        integers: tuple[str, ...] = (),
        *,
        smallest: int = 1,
    ):
        self._list_type = list_type
        self._text_fields = text_fields
        self._number_fields = numbers
        self._smallest = max(1, smallest)
        self._options = pa_json.ParseOptions(
            explicit_schema=pa.schema([("v", list_type)]), unexpected_field_behavior="error"
        )
        typed = pa.list_(
            pa.struct([(f.name, pa.int64() if f.name in integers else f.type) for f in list_type.value_type])
        )
        self._typed_options = pa_json.ParseOptions(
            explicit_schema=pa.schema([("v", typed)]), unexpected_field_behavior="error"
        )
        self._read = pa_json.ReadOptions(use_threads=False, block_size=1 << 26)

    def parse_typed(self, lines: _Lines, start: int, stop: int) -> tuple[pa.Array, np.ndarray] | None:
        """Rows ``[start, stop)`` as they are, integer fields read as int64; None if any row fails."""
        offsets = lines.offsets
        body = lines.body.slice(int(offsets[start]), int(offsets[stop] - offsets[start]))
        try:
            table = pa_json.read_json(pa.BufferReader(body), self._read, self._typed_options)
        except pa.ArrowInvalid:
            return None
        if table.num_rows != stop - start:
            return None
        return table.column("v").combine_chunks().cast(self._list_type), np.zeros(stop - start, dtype=bool)

    def parse_block(
        self, body: pa.Buffer, offsets: np.ndarray, original: pa.Array, start: int, stop: int
    ) -> tuple[pa.Array, np.ndarray]:
        """Parse rows ``[start, stop)``: their lines in one call, else each half, else row by row."""
        lines = body.slice(int(offsets[start]), int(offsets[stop] - offsets[start]))
        try:
            table = pa_json.read_json(pa.BufferReader(lines), self._read, self._options)
        except pa.ArrowInvalid:
            table = None
        if table is not None and table.num_rows == stop - start:  # else a row smuggled in an object
            return table.column("v").combine_chunks(), np.zeros(stop - start, dtype=bool)
        if stop - start <= self._smallest:
            return self._slow(original.slice(start, stop - start).to_pylist())
        middle = (start + stop) // 2
        left, left_bad = self.parse_block(body, offsets, original, start, middle)
        right, right_bad = self.parse_block(body, offsets, original, middle, stop)
        return pa.concat_arrays([left, right]), np.concatenate([left_bad, right_bad])

    def _slow(self, texts: Iterable[str | None]) -> tuple[pa.Array, np.ndarray]:
        rows = [self._load(text) for text in texts]
        invalid = np.fromiter((row is _BAD for row in rows), dtype=bool)
        clean = [None if row is _BAD else row for row in rows]
        return pa.array(clean, type=self._list_type), invalid

    def _load(self, text: str | None) -> Any:
        """One row with ``json.loads``: the reference semantics the fast path must agree with."""
        if text is None:
            return None
        try:
            value = json.loads(
                text,
                parse_int=_Number,
                parse_float=_Number,
                parse_constant=_reject_constant,
                object_pairs_hook=self._object,
            )
        except (ValueError, RecursionError):
            return _BAD
        if value is None:
            return None
        if not isinstance(value, list):
            return _BAD
        elements = [self._element(element) for element in value]
        return _BAD if any(element is _BAD for element in elements) else elements

    def _element(self, element: Any) -> Any:
        if element is None:
            return None
        if not isinstance(element, _Object) or element.duplicated:
            return _BAD
        out = {}
        for name in self._text_fields + self._number_fields:
            value = element.get(name)
            numeric_ok = name in self._number_fields or not isinstance(value, _Number)
            if value is not None and not (isinstance(value, str) and numeric_ok and _utf8(value)):
                return _BAD
            out[name] = None if value is None else str(value)
        return out

    def _object(self, pairs: list[tuple[str, Any]]) -> _Object:
        obj = _Object(pairs)
        if len(obj) < len(pairs):
            keys = [key for key, _ in pairs]
            requested = self._text_fields + self._number_fields
            obj.duplicated = frozenset(k for k in requested if keys.count(k) > 1)
        return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\\ud800" escape
        return False
    return True
