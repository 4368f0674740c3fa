"""JSON Lines, one ``json`` parse per line; numbers keep their text.

Numbers are parsed as their text (``12.50`` stays ``12.50``, ``1e3`` stays ``1e3``, ``NaN``
becomes text the validator rejects); ``true``/``false`` become text; nested values become compact
JSON in which numbers are JSON *strings* holding the original text
(``{"quantity":"2","unit_price":"12.50"}``), so no decimal is ever rounded. A key missing from an
object is null, not a read error: the validator names the rule. Rejects (raw line as
``original``): ``invalid_json``, ``not_an_object``, ``invalid_encoding``, ``line_too_long``. A
line of whitespace is blank: not a record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read.batching import STEP, BatchBuilder, Limits, ReadSpec, TextReader
from kafka_ingest.read.text import INVALID_ENCODING, LINE_TOO_LONG, SURROGATE, Lines, json_text, open_text

INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_DECODER = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)
_PLAIN = frozenset({str, type(None)})


def read_jsonl(binary: IO[bytes], spec: ReadSpec, limits: Limits) -> Iterator[ReadBatch]:
    with open_text(binary, spec.options.encoding, "\n") as text:
        yield from JsonlReader(spec, limits, Lines(text, limits.field)).batches()


class JsonlReader(TextReader):
    """JSON Lines, one ``json`` parse per line; numbers keep their text (see the module docstring)."""

    line_number = 0

    def _start(self) -> list[int | None] | None:
        return list(range(len(self.spec.names)))

    def _fill(self, batch: BatchBuilder, budget: int) -> bool:
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

    def _take(self, text: str, batch: BatchBuilder) -> None:
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
                if len(batch.rows) >= STEP:
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
        row = [v if v is None or type(v) is str else json_text(v) for v in row]
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and SURROGATE.search(json_text(obj)):
        return INVALID_ENCODING, "a \\u escape of an unpaired surrogate"
    return row
