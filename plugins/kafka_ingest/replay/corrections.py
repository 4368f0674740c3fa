"""The corrections file: rows the data team fixed, keyed by the topic's key.

CSV (header row, UTF-8, a BOM allowed) or JSON Lines, chosen by the name (``.csv``, ``.jsonl`` or
``.ndjson``; ``.gz`` allowed); a local path or an fsspec URL. A row replaces the selected
envelope's original as a whole, so the file carries every required column of the topic (optional
ones may be left out); nested columns are JSON text in CSV and JSON values in JSON Lines, as in an
extract. Anything doubtful stops the replay before it publishes anything (:class:`ReplayInputError`):
unknown or missing columns, a row without a key, a key given twice, a key that matches no selected
envelope. The messages name columns and keys, never other values (a row may hold a card number).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fsspec

from kafka_ingest.replay.errors import ReplayInputError
from kafka_ingest.specs import TopicSpec

_SHOWN = 20


@dataclass(frozen=True)
class Corrections:
    """The corrected rows by key, and the file's identity for the audit record."""

    path: str
    fingerprint: str
    rows: dict[str, dict[str, str | None]]


def load_corrections(path: str, spec: TopicSpec) -> Corrections:
    """Read and check the file against ``spec``'s columns (not yet against the selection)."""
    with fsspec.open(path, "rb", compression="infer") as handle:
        data = handle.read()
    name = path.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        columns, rows = _csv_rows(data, path)
    elif name.endswith((".jsonl", ".ndjson")):
        columns, rows = _jsonl_rows(data, path, spec)
    else:
        raise ReplayInputError(f"Corrections file {path}: expected a .csv or .jsonl file.")
    _check_columns(path, columns, spec)
    return Corrections(path, hashlib.sha256(data).hexdigest(), _by_key(path, rows, spec.key_field))


def check_keys_selected(corrections: Corrections, selected_keys: Iterable[str | None]) -> None:
    """Every corrected key must belong to a selected envelope: a stray key is most likely a typo,
    or a selection narrower than the file, and either way the file is not what was meant."""
    stray = sorted(set(corrections.rows) - {k for k in selected_keys if k})
    if stray:
        raise ReplayInputError(
            f"Corrections file {corrections.path}: {len(stray)} key(s) match no selected DLQ envelope: "
            f"{_listed(stray)}. Nothing was published; widen the selection or remove those rows."
        )


def _csv_rows(data: bytes, path: str) -> tuple[list[str], list[dict[str, str | None]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReplayInputError(f"Corrections file {path} is not UTF-8 (byte {exc.start}).") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = list(reader.fieldnames or [])
    rows: list[dict[str, str | None]] = []
    for number, row in enumerate(reader, start=1):
        if None in row or any(value is None for value in row.values()):
            raise ReplayInputError(f"Corrections file {path}, row {number}: wrong number of fields.")
        rows.append({column: value for column, value in row.items() if column is not None})
    return columns, rows


def _jsonl_rows(data: bytes, path: str, spec: TopicSpec) -> tuple[list[str], list[dict[str, str | None]]]:
    columns: dict[str, None] = {}
    rows: list[dict[str, str | None]] = []
    for number, line in enumerate(data.decode("utf-8-sig", "strict").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ReplayInputError(f"Corrections file {path}, line {number}: not valid JSON.") from None
        if not isinstance(row, dict):
            raise ReplayInputError(f"Corrections file {path}, line {number}: not a JSON object.")
        columns.update(dict.fromkeys(row))
        rows.append({str(k): _as_text(v, k in spec.reader.json_columns) for k, v in row.items()})
    return list(columns), rows


def _as_text(value: Any, nested: bool) -> str | None:
    """A JSON value as the readers hand it on: text, nested columns as JSON text."""
    if value is None or isinstance(value, str):
        return value
    if nested or isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _check_columns(path: str, columns: list[str], spec: TopicSpec) -> None:
    if spec.key_field not in columns:
        raise ReplayInputError(
            f"Corrections file {path} has no key column {spec.key_field!r} (columns: {_listed(columns)})."
        )
    unknown = [c for c in columns if c not in spec.all_columns]
    if unknown:
        raise ReplayInputError(
            f"Corrections file {path} has unknown column(s) {_listed(unknown)}; {spec.topic} takes "
            f"{_listed(spec.all_columns)}."
        )
    missing = [c for c in spec.columns if c not in columns]
    if missing:
        raise ReplayInputError(
            f"Corrections file {path} lacks required column(s) {_listed(missing)}: a corrected row "
            "replaces the original whole."
        )


def _by_key(path: str, rows: list[dict[str, str | None]], key_field: str) -> dict[str, dict[str, str | None]]:
    by_key: dict[str, dict[str, str | None]] = {}
    duplicates: list[str] = []
    for number, row in enumerate(rows, start=1):
        key = (row.get(key_field) or "").strip()
        if not key:
            raise ReplayInputError(f"Corrections file {path}, row {number}: no {key_field}.")
        if key in by_key:
            duplicates.append(key)
        by_key[key] = row
    if duplicates:
        raise ReplayInputError(
            f"Corrections file {path} gives key(s) more than once: {_listed(sorted(set(duplicates)))}. "
            "Keep one row per key."
        )
    return by_key


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
