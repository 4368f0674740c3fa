"""Specifications for kafka_ingest.read: extract files -> bounded, contiguous batches of text."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read import (
    BAD_QUOTING,
    FIELD_TOO_LARGE,
    INVALID_ENCODING,
    INVALID_JSON,
    LINE_TOO_LONG,
    NOT_AN_OBJECT,
    WRONG_FIELD_COUNT,
    ExtractReadError,
    detect_format,
    fingerprint,
    list_part_files,
    pinned,
    read_extract,
)
from kafka_ingest.read.formats import csv_fast
from kafka_ingest.specs import ReaderOptions, Stage

ITEMS = '[{"product_id":"P-1","quantity":2,"unit_price":12.50}]'


def write(path: Path, content: str | bytes, *, gz: bool = False) -> str:
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def read(path: Any, columns: tuple[str, ...] = ("a", "b"), **kwargs: Any) -> list[ReadBatch]:
    return list(read_extract(path, columns=columns, **kwargs))


def rows(batches: list[ReadBatch]) -> list[tuple[int, dict[str, Any]]]:
    """(row number, row) for every row read, in order."""
    out = []
    for batch in batches:
        numbers = batch.row_numbers.tolist()
        out += list(zip(numbers, batch.table.to_pylist(), strict=True))
    return out


def rejects(batches: list[ReadBatch]) -> list[Any]:
    return [r for batch in batches for r in batch.rejected]


# --- formats -------------------------------------------------------------------------------------


def test_csv_values_are_text_in_spec_column_order(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "b,x,a\n1,ignored,12.50\n")
    batches = read(path)
    assert batches[0].table.schema == pa.schema([("a", pa.string()), ("b", pa.string())])
    assert rows(batches) == [(1, {"a": "12.50", "b": "1"})]


def test_csv_gzip_is_decompressed(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv.gz", "a,b\n1,2\n", gz=True)
    assert rows(read(path)) == [(1, {"a": "1", "b": "2"})]


def test_gzip_is_recognised_by_its_magic_bytes_without_the_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a,b\n1,2\n", gz=True)
    assert rows(read(path)) == [(1, {"a": "1", "b": "2"})]


def test_csv_empty_fields_stay_empty_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", 'a,b\n,""\n')
    assert rows(read(path)) == [(1, {"a": "", "b": ""})]


def test_csv_delimiter_comes_from_the_options(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a;b\n1,5;2\n")
    assert rows(read(path, options=ReaderOptions(csv_delimiter=";"))) == [(1, {"a": "1,5", "b": "2"})]


def test_jsonl_scalars_become_text_and_numbers_keep_their_spelling(tmp_path: Path) -> None:
    line = '{"a": 12.50, "b": 1e3, "c": true, "d": null, "e": NaN, "f": 7}\n'
    path = write(tmp_path / "part-1.jsonl", line)
    got = rows(read(path, columns=("a", "b", "c", "d", "e", "f")))
    assert got == [(1, {"a": "12.50", "b": "1e3", "c": "true", "d": None, "e": "NaN", "f": "7"})]


def test_jsonl_nested_values_become_compact_json_with_numbers_as_strings(tmp_path: Path) -> None:
    line = json.dumps({"a": "1", "b": [{"p": "é", "q": 2, "u": 12.50}]}).replace("12.5", "12.50")
    path = write(tmp_path / "part-1.jsonl", line + "\n")
    assert rows(read(path, json_columns=("b",))) == [(1, {"a": "1", "b": '[{"p":"é","q":"2","u":"12.50"}]'})]


def test_jsonl_missing_key_is_null_not_a_reject(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.jsonl", '{"a": "1"}\n')
    batches = read(path)
    assert rows(batches) == [(1, {"a": "1", "b": None})]
    assert rejects(batches) == []


def test_jsonl_gzip_is_decompressed(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.jsonl.gz", '{"a": "1", "b": "2"}\r\n', gz=True)
    assert rows(read(path)) == [(1, {"a": "1", "b": "2"})]


def write_parquet(path: Path, table: pa.Table) -> str:
    pq.write_table(table, path)
    return str(path)


def test_parquet_scalars_become_text(tmp_path: Path) -> None:
    table = pa.table(
        {"a": pa.array([1, None], pa.int64()), "b": [True, False], "c": [0.5, 3.0], "d": ["x", "y"]}
    )
    path = write_parquet(tmp_path / "part-1.parquet", table)
    got = rows(read(path, columns=("a", "b", "c", "d")))
    assert got == [
        (1, {"a": "1", "b": "true", "c": "0.5", "d": "x"}),
        (2, {"a": None, "b": "false", "c": "3", "d": "y"}),
    ]


def test_parquet_decimals_keep_their_scale(tmp_path: Path) -> None:
    table = pa.table(
        {"a": pa.array([Decimal("12.50"), Decimal("0.00")], pa.decimal128(12, 2)), "b": ["1", "2"]}
    )
    path = write_parquet(tmp_path / "part-1.parquet", table)
    assert [r["a"] for _, r in rows(read(path))] == ["12.50", "0.00"]


@pytest.mark.parametrize(
    ("unit", "ticks", "text"),
    [
        ("ms", 1_714_566_896_789, "2024-05-01T12:34:56.789Z"),
        ("us", 1_714_566_896_789_123, "2024-05-01T12:34:56.789123Z"),
        ("ns", 1_714_566_896_789_123_456, "2024-05-01T12:34:56.789123456Z"),
    ],
)
def test_parquet_zoned_timestamps_become_utc_iso_8601_with_z(
    tmp_path: Path, unit: str, ticks: int, text: str
) -> None:
    column = pa.array([ticks], pa.timestamp(unit, "Asia/Seoul"))  # stored as UTC, shown as +09:00
    path = write_parquet(tmp_path / "part-1.parquet", pa.table({"a": column, "b": ["1"]}))
    assert rows(read(path))[0][1]["a"] == text


def test_parquet_timestamps_without_zone_have_no_offset(tmp_path: Path) -> None:
    column = pa.array([dt.datetime(2024, 5, 1, 12, 34, 56, 789000)], pa.timestamp("ms"))
    path = write_parquet(tmp_path / "part-1.parquet", pa.table({"a": column, "b": ["1"]}))
    assert rows(read(path))[0][1]["a"] == "2024-05-01T12:34:56.789"


def test_parquet_list_of_structs_becomes_json_with_decimals_as_text(tmp_path: Path) -> None:
    item = pa.struct(
        [("product_id", pa.string()), ("quantity", pa.int32()), ("unit_price", pa.decimal128(12, 2))]
    )
    items = pa.array(
        [[{"product_id": "P-1", "quantity": 2, "unit_price": Decimal("12.50")}], None], pa.list_(item)
    )
    path = write_parquet(tmp_path / "part-1.parquet", pa.table({"a": ["1", "2"], "items": items}))
    got = [r["items"] for _, r in rows(read(path, columns=("a", "items"), json_columns=("items",)))]
    assert got == ['[{"product_id":"P-1","quantity":2,"unit_price":"12.50"}]', None]


def test_parquet_nested_nulls_and_empty_lists_become_json(tmp_path: Path) -> None:
    item = pa.struct([("product_id", pa.string()), ("quantity", pa.int32())])
    items = pa.array([[], [None, {"product_id": None, "quantity": 1}]], pa.list_(item))
    path = write_parquet(tmp_path / "part-1.parquet", pa.table({"a": ["1", "2"], "items": items}))
    got = [r["items"] for _, r in rows(read(path, columns=("a", "items")))]
    assert got == ["[]", '[null,{"product_id":null,"quantity":1}]']


def test_parquet_nested_strings_are_json_escaped(tmp_path: Path) -> None:
    items = pa.array([[{"product_id": 'say "hi"\n\\ é'}]], pa.list_(pa.struct([("product_id", pa.string())])))
    path = write_parquet(tmp_path / "part-1.parquet", pa.table({"a": ["1"], "items": items}))
    text = rows(read(path, columns=("a", "items")))[0][1]["items"]
    assert json.loads(text) == [{"product_id": 'say "hi"\n\\ é'}]


def test_parquet_missing_required_column_names_the_file(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "part-1.parquet", pa.table({"a": ["1"]}))
    with pytest.raises(ExtractReadError, match=r"part-1\.parquet.*\bb\b"):
        read(path)


def test_parquet_missing_optional_column_is_all_nulls(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "part-1.parquet", pa.table({"a": ["1"], "b": ["2"]}))
    assert rows(read(path, optional_columns=("c",))) == [(1, {"a": "1", "b": "2", "c": None})]


def test_corrupt_parquet_raises_extract_read_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.parquet", b"PAR1 not really parquet")
    with pytest.raises(ExtractReadError, match=r"part-1\.parquet"):
        read(path)


# --- where files come from -----------------------------------------------------------------------


@pytest.fixture
def memory_dir() -> Any:
    fs = fsspec.filesystem("memory")
    root = f"/readers-{id(fs)}-{len(fs.store)}"
    fs.mkdir(root)
    yield fs, root
    fs.rm(root, recursive=True)


def test_fsspec_memory_url_is_read(memory_dir: Any) -> None:
    fs, root = memory_dir
    fs.pipe(f"{root}/part-1.csv.gz", gzip.compress(b"a,b\n1,2\n"))
    assert rows(read(f"memory://{root}/part-1.csv.gz")) == [(1, {"a": "1", "b": "2"})]


def test_object_with_open_is_read_through_it(tmp_path: Path) -> None:
    write(tmp_path / "part-1.jsonl", '{"a": "1", "b": "2"}\n')
    assert rows(read(tmp_path / "part-1.jsonl")) == [(1, {"a": "1", "b": "2"})]


def test_upath_directory_lists_and_reads_entries_of_its_own_type(memory_dir: Any) -> None:
    upath = pytest.importorskip("upath")
    fs, root = memory_dir
    fs.pipe({f"{root}/part-2.csv": b"a,b\n1,2\n", f"{root}/part-1.jsonl.gz": gzip.compress(b'{"a": "x"}\n')})
    files = list_part_files(upath.UPath(f"memory://{root}"))
    assert [(type(f).__name__, f.name) for f in files] == [
        ("MemoryPath", "part-1.jsonl.gz"),
        ("MemoryPath", "part-2.csv"),
    ]
    assert [rows(read(f))[0][1]["a"] for f in files] == ["x", "1"]


def test_unreadable_header_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ExtractReadError, match=r"part-1\.csv: line 2: unreadable header"):
        read(write(tmp_path / "part-1.csv", '\n"a"x,b\n1,2\n'))


def test_missing_file_raises_extract_read_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ExtractReadError, match=r"part-9\.csv"):
        read(str(tmp_path / "part-9.csv"))


def test_list_part_files_sorts_by_name_and_skips_markers_hidden_and_unknown(tmp_path: Path) -> None:
    for name in [
        "part-2.csv",
        "part-10.jsonl.gz",
        "part-1.parquet",
        "_SUCCESS",
        ".part-3.csv.crc",
        "_tmp.csv",
        "x.txt",
    ]:
        (tmp_path / name).write_text("")
    (tmp_path / "part-4.csv").mkdir()
    expected = [str(tmp_path / n) for n in ["part-1.parquet", "part-10.jsonl.gz", "part-2.csv"]]
    assert list_part_files(str(tmp_path)) == expected


def test_list_part_files_keeps_the_url_form(memory_dir: Any) -> None:
    fs, root = memory_dir
    fs.pipe({f"{root}/part-b.csv": b"", f"{root}/part-a.csv": b"", f"{root}/_SUCCESS": b""})
    assert list_part_files(f"memory://{root}") == [
        f"memory://{root}/part-a.csv",
        f"memory://{root}/part-b.csv",
    ]


def test_list_part_files_returns_entries_of_the_directory_objects_type(tmp_path: Path) -> None:
    (tmp_path / "part-2.csv").write_text("")
    (tmp_path / "part-1.csv").write_text("")
    (tmp_path / "_SUCCESS").write_text("")
    assert list_part_files(tmp_path) == [tmp_path / "part-1.csv", tmp_path / "part-2.csv"]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("part-1.csv", "csv"),
        ("part-1.CSV.GZ", "csv"),
        ("part-1.jsonl", "jsonl"),
        ("part-1.jsonl.gz", "jsonl"),
        ("part-1.json.gz", "jsonl"),
        ("s3://b/dt=2024-05-01/part-1.snappy.parquet", "parquet"),
    ],
)
def test_detect_format_goes_by_the_name(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


@pytest.mark.parametrize("name", ["part-1.txt", "part-1.parquet.gz", "_SUCCESS"])
def test_detect_format_refuses_unknown_names_naming_them(name: str) -> None:
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        detect_format(name)


def test_fingerprint_is_sha256_of_the_stored_bytes_and_follows_the_content(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv.gz", b"\x1f\x8b stored bytes")
    before = fingerprint(path)
    assert before == "sha256:" + __import__("hashlib").sha256(b"\x1f\x8b stored bytes").hexdigest()
    write(tmp_path / "part-1.csv.gz", b"\x1f\x8b other bytes")
    assert fingerprint(path) != before


# --- CSV text rules ------------------------------------------------------------------------------


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "\ufeffa,b\n1,2\n".encode())
    assert rows(read(path)) == [(1, {"a": "1", "b": "2"})]


def test_crlf_line_ends_are_not_part_of_the_values(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a,b\r\n1,2\r\n3,4\r\n")
    assert rows(read(path)) == [(1, {"a": "1", "b": "2"}), (2, {"a": "3", "b": "4"})]


def test_quoted_commas_quotes_and_newlines_are_one_record_each(tmp_path: Path) -> None:
    items = '"' + ITEMS.replace('"', '""') + '"'
    path = write(tmp_path / "part-1.csv", f'a,b\n"x,y","say ""hi"""\n"line1\r\nline2",{items}\nlast,1\n')
    got = rows(read(path))
    assert got == [
        (1, {"a": "x,y", "b": 'say "hi"'}),
        (2, {"a": "line1\r\nline2", "b": ITEMS}),
        (3, {"a": "last", "b": "1"}),
    ]


def test_blank_lines_are_not_records(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "\na,b\n\n1,2\r\n\r\n\n3,4\n\n")
    batches = read(path)
    assert rows(batches) == [(1, {"a": "1", "b": "2"}), (2, {"a": "3", "b": "4"})]
    assert rejects(batches) == []


def test_many_blank_lines_cost_no_batches(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a,b\n" + "\n" * 200_000 + "1,2\n")
    batches = read(path, batch_rows=10)
    assert [(len(b.rejected), b.last_row) for b in batches] == [(0, 1)]


@pytest.mark.parametrize("content", [b"", gzip.compress(b"")])
def test_empty_file_yields_no_batches(tmp_path: Path, content: bytes) -> None:
    assert read(write(tmp_path / "part-1.csv.gz", content)) == []


@pytest.mark.parametrize("name", ["part-1.csv", "part-1.jsonl", "part-1.parquet"])
def test_a_zero_byte_file_of_any_format_yields_no_batches(tmp_path: Path, name: str) -> None:
    assert read(write(tmp_path / name, b"")) == []


def test_header_only_file_yields_no_batches(tmp_path: Path) -> None:
    assert read(write(tmp_path / "part-1.csv", "a,b\r\n")) == []


def test_missing_required_column_names_the_file_and_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a,x\n1,2\n")
    with pytest.raises(ExtractReadError, match=r"part-1\.csv.*required column\(s\) b, c"):
        read(path, columns=("a", "b", "c"))


def test_missing_optional_column_is_all_nulls(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a,b\n1,2\n3,4\n")
    assert [r["c"] for _, r in rows(read(path, optional_columns=("c",)))] == [None, None]


# --- CSV rejects ---------------------------------------------------------------------------------


def test_wrong_field_count_is_rejected_saying_expected_and_got(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a,b\n1,2\n3,4,5\n6\n7,8\n")
    batches = read(path)
    assert [n for n, _ in rows(batches)] == [1, 4]
    extra, short = rejects(batches)
    assert (extra.row, extra.stage, extra.error_type) == (2, Stage.READ, WRONG_FIELD_COUNT)
    assert "line 3" in extra.message
    assert "expected 2 fields, got 3" in extra.message
    assert extra.original == {"a": "3", "b": "4", "_extra": ["5"]}
    assert (short.row, short.original) == (3, {"a": "6"})


def test_bad_quoting_is_rejected_and_the_reader_resynchronises(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", 'a,b\n1,"x"y\n2,"multi\nline "oops" z\n3,ok\n')
    batches = read(path)
    assert rows(batches) == [(3, {"a": "3", "b": "ok"})]
    first, second = rejects(batches)
    assert (first.row, first.error_type, first.original) == (1, BAD_QUOTING, '1,"x"y\n')
    assert (second.row, second.error_type) == (2, BAD_QUOTING)
    assert "lines 3-4" in second.message
    assert second.original == '2,"multi\nline "oops" z\n'


def test_unterminated_quote_at_the_end_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", 'a,b\n1,2\n3,"never closed\n')
    batches = read(path)
    assert [n for n, _ in rows(batches)] == [1]
    assert [(r.row, r.error_type) for r in rejects(batches)] == [(2, BAD_QUOTING)]


def test_invalid_utf8_row_is_rejected_with_replacement_characters(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", b"a,b\n1,caf\xe9\n2,caf\xc3\xa9\n")
    batches = read(path)
    assert rows(batches) == [(2, {"a": "2", "b": "café"})]
    (reject,) = rejects(batches)
    assert (reject.row, reject.error_type, reject.original) == (
        1,
        INVALID_ENCODING,
        {"a": "1", "b": "caf\ufffd"},
    )
    json.dumps(reject.original)


def test_field_over_the_size_limit_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    big = "\n".join(["y" * 50] * 30)
    path = write(tmp_path / "part-1.csv", f'a,b\n1,"{big}"\n2,ok\n')
    batches = read(path, field_size_limit=1000)
    first = rejects(batches)[0]
    assert (first.row, first.error_type) == (1, FIELD_TOO_LARGE)
    assert len(first.original) <= 1100
    assert rows(batches)[-1][1] == {"a": "2", "b": "ok"}


def test_a_quoted_field_over_the_limit_is_one_reject_and_its_tail_is_no_record(tmp_path: Path) -> None:
    big = "\n".join(['y "" ' * 10] * 30)  # 30 lines, escaped quotes inside
    path = write(tmp_path / "part-1.csv", f'a,b\n1,"{big}"\n2,"ok ""quoted"""\n3\n')
    batches = read(path, field_size_limit=1000)
    assert [(r.row, r.error_type) for r in rejects(batches)] == [(1, FIELD_TOO_LARGE), (3, WRONG_FIELD_COUNT)]
    assert rows(batches) == [(2, {"a": "2", "b": 'ok "quoted"'})]
    assert rejects(batches)[1].message.startswith("line 33:")


def test_line_over_the_size_limit_is_rejected_without_reading_it_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", "a,b\n1," + "z" * 300_000 + "\n2,ok\n")
    batches = read(path, field_size_limit=1000)
    (reject,) = rejects(batches)
    assert (reject.row, reject.error_type) == (1, LINE_TOO_LONG)
    assert "line 2" in reject.message
    assert len(reject.original) <= 64 << 10
    assert rows(batches) == [(2, {"a": "2", "b": "ok"})]


def test_rejects_and_rows_share_one_record_numbering(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv", 'a,b\n1,2\n\n"x"y,1\n3\n4,5\n')
    batches = read(path)
    numbers = sorted([n for n, _ in rows(batches)] + [r.row for r in rejects(batches)])
    assert numbers == [1, 2, 3, 4]
    assert batches[-1].last_row == 4


# --- JSON Lines rejects --------------------------------------------------------------------------


def test_truncated_json_is_rejected_with_its_row_number(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.jsonl", '{"a": "1"}\n\n{"a": "2", "b\n{"a": "3"}\n')
    batches = read(path)
    assert [n for n, _ in rows(batches)] == [1, 3]
    (reject,) = rejects(batches)
    assert (reject.row, reject.error_type, reject.original) == (2, INVALID_JSON, '{"a": "2", "b\n')
    assert "line 3" in reject.message


def test_json_line_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.jsonl", '[1, 2]\n"text"\n{"a": "1"}\n')
    batches = read(path)
    assert [(r.row, r.error_type) for r in rejects(batches)] == [(1, NOT_AN_OBJECT), (2, NOT_AN_OBJECT)]
    assert [n for n, _ in rows(batches)] == [3]


def test_json_line_with_invalid_utf8_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.jsonl", b'{"a": "caf\xe9"}\n{"a": "ok"}\n')
    batches = read(path)
    (reject,) = rejects(batches)
    assert (reject.row, reject.error_type, reject.original) == (1, INVALID_ENCODING, '{"a": "caf\ufffd"}\n')


def test_json_escape_of_an_unpaired_surrogate_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.jsonl", '{"a": "\\ud800"}\n{"a": "\\ud83d\\ude00"}\n')
    batches = read(path)
    assert [(r.row, r.error_type) for r in rejects(batches)] == [(1, INVALID_ENCODING)]
    assert rows(batches) == [(2, {"a": "\U0001f600", "b": None})]


def test_blank_json_lines_are_not_records(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.jsonl", '\n{"a": "1"}\n  \n\r\n{"a": "2"}\n')
    assert [n for n, _ in rows(read(path))] == [1, 2]


# --- batches -------------------------------------------------------------------------------------


def test_batches_are_bounded_contiguous_and_account_for_every_record(tmp_path: Path) -> None:
    body = "".join(f"{i},x\n" if i % 7 else f"{i}\n" for i in range(1, 2501))
    batches = read(write(tmp_path / "part-1.csv", "a,b\n" + body), batch_rows=1000)
    assert [b.rows_read for b in batches] == [1000, 1000, 500]
    assert [b.last_row for b in batches] == [1000, 2000, 2500]
    for batch in batches:
        numbers = sorted(batch.row_numbers.tolist() + [r.row for r in batch.rejected])
        assert numbers == list(range(batch.last_row - batch.rows_read + 1, batch.last_row + 1))


def test_batch_bytes_cuts_a_batch_after_the_record_that_exceeds_it(tmp_path: Path) -> None:
    body = "".join(f"{i:03d},{'v' * 95}\n" for i in range(1, 51))  # 100 characters a line
    batches = read(write(tmp_path / "part-1.csv", "a,b\n" + body), batch_bytes=1000)
    assert [b.last_row for b in batches] == [11, 22, 33, 44, 50]
    assert [n for b in batches for n in b.row_numbers.tolist()] == list(range(1, 51))


def test_parquet_batches_are_cut_by_rows_and_by_bytes_within_them(tmp_path: Path) -> None:
    table = pa.table({"a": [f"{i:04d}" for i in range(1, 101)], "b": ["v" * 96] * 100})
    path = write_parquet(tmp_path / "part-1.parquet", table)
    batches = read(path, batch_rows=40, batch_bytes=1000)
    assert [b.last_row for b in batches] == [11, 22, 33, 40, 51, 62, 73, 80, 91, 100]
    assert [n for b in batches for n in b.row_numbers.tolist()] == list(range(1, 101))


def test_corrupt_gzip_raises_extract_read_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "part-1.csv.gz", b"\x1f\x8b\x08\x00garbage that is not deflate")
    with pytest.raises(ExtractReadError, match=r"part-1\.csv\.gz"):
        read(path)


@pytest.mark.parametrize("arrow_csv", [True, False], ids=["arrow-blocks", "exact"])
def test_truncated_gzip_fails_when_met_after_earlier_batches(
    tmp_path: Path, arrow_csv: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_fast.ArrowCsvReader, "block_bytes", 4096)  # read ahead: a few KiB
    data = gzip.compress(("a,b\n" + "1,2\n" * 50_000).encode())
    path = write(tmp_path / "part-1.csv.gz", data[: len(data) // 2])
    batches = read_extract(path, columns=("a", "b"), batch_rows=1000, arrow_csv=arrow_csv)
    assert next(batches).last_row == 1000
    with pytest.raises(ExtractReadError, match=r"part-1\.csv\.gz"):
        list(batches)


# --- the round trip ------------------------------------------------------------------------------

field_text = st.text(max_size=12)  # any code point but surrogates


@st.composite
def csv_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(1, 4))
    header = [f"c{i}" for i in range(width)]
    body = draw(st.lists(st.lists(field_text, min_size=width, max_size=width), max_size=25))
    return header, body


# Python 3.11's writer quotes only the characters of its own line terminator, so with "\n" a lone
# "\r" would go out unquoted (not RFC 4180, and unreadable by any CSV reader): quote all there.
dialects = st.sampled_from([("\r\n", False), ("\r\n", True), ("\n", True)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=csv_tables(), dialect=dialects, batch_rows=st.integers(1, 8))
def test_csv_written_by_csv_writer_reads_back_identically(
    tmp_path: Path, table: tuple[list[str], list[list[str]]], dialect: tuple[str, bool], batch_rows: int
) -> None:
    header, body = table
    line_end, quote_all = dialect
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, lineterminator=line_end, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    writer.writerow(header)
    writer.writerows(body)
    path = write(tmp_path / "part-1.csv", buffer.getvalue())
    batches = read(path, columns=tuple(header), batch_rows=batch_rows)
    assert rejects(batches) == []
    assert [(n, list(r.values())) for n, r in rows(batches)] == list(enumerate(body, start=1))
    assert [b.last_row for b in batches] == list(range(batch_rows, len(body), batch_rows)) + [
        len(body)
    ] * bool(body)


def test_the_csv_modules_field_limit_is_restored_while_batches_are_out(tmp_path: Path) -> None:
    before = csv.field_size_limit()
    path = write(tmp_path / "part-1.csv", "a,b\n" + "1,2\n" * 30)
    batches = read_extract(path, columns=("a", "b"), batch_rows=10, field_size_limit=1000)
    next(batches)
    assert csv.field_size_limit() == before
    assert sum(b.table.num_rows for b in batches) == 20
    assert csv.field_size_limit() == before


def test_a_pinned_url_read_on_another_thread_reuses_this_threads_cached_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsspec makes one filesystem per thread: unpinned, a simplecache URL read on the
    prepare-ahead thread would be downloaded again into a second temp folder."""
    import tempfile
    import threading

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    url = "simplecache::file://" + write(tmp_path / "part-1.csv", "a,b\n1,2\n3,4\n")
    fingerprint(url)  # the task's thread copies the file once
    path = pinned(url)
    found: list[ReadBatch] = []
    worker = threading.Thread(target=lambda: found.extend(read_extract(path, columns=("a", "b"))))
    worker.start()
    worker.join()
    assert [b.table.column("a").to_pylist() for b in found] == [["1", "3"]]
    assert found[0].file == url
    copies = [p for p in temp.rglob("*") if p.is_file()]
    assert len(copies) == 1, copies
