"""The CSV fast path (Arrow over canonical blocks) reads every file exactly as the exact reader does.

The exact reader (``csv`` module plus the reader's per-line checks) is the reference: for any
bytes, well-formed or hostile, the fast path must yield the same batches, with the same tables,
record numbers, rejects (messages and line numbers included) and cuts. The fast path must also
actually take the canonical blocks, or the equivalence would hold by never using it.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read import ExtractReadError, read_extract
from kafka_ingest.read.formats import csv_fast
from kafka_ingest.read.formats.csv_blocks import CsvBlock, Handover, csv_blocks

HEADER = b"a,b,c\r\n"


def batches(path: str, arrow_csv: bool, **kwargs: Any) -> list[ReadBatch] | str:
    """Every batch of the file, or the read error's message."""
    try:
        return list(
            read_extract(path, columns=("a", "b"), optional_columns=("c", "z"), arrow_csv=arrow_csv, **kwargs)
        )
    except ExtractReadError as exc:
        return f"error: {exc}"


def same(fast: list[ReadBatch] | str, exact: list[ReadBatch] | str) -> None:
    if isinstance(exact, str) or isinstance(fast, str):
        assert fast == exact
        return
    assert len(fast) == len(exact)
    for mine, theirs in zip(fast, exact, strict=True):
        assert mine.file == theirs.file
        assert mine.table.schema == theirs.table.schema
        assert mine.table.to_pydict() == theirs.table.to_pydict()
        assert np.array_equal(mine.row_numbers, theirs.row_numbers)
        assert mine.rejected == theirs.rejected
        assert mine.last_row == theirs.last_row


def check_equivalent(
    tmp_path: Path, data: bytes, *, gz: bool = False, **kwargs: Any
) -> list[ReadBatch] | str:
    path = tmp_path / ("part-1.csv.gz" if gz else "part-1.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    exact = batches(str(path), False, **kwargs)
    same(batches(str(path), True, **kwargs), exact)
    return exact


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few bytes: records are cut by block ends, and handovers happen mid-file."""
    monkeypatch.setattr(csv_fast.ArrowCsvReader, "block_bytes", 37)


# --- generated files -----------------------------------------------------------------------------

field_text = st.text(st.sampled_from(list('aab1 ,"\n\té봄€')), max_size=8) | st.just("x\r\ny")
#: Everything that takes a file out of the canonical subset, and some that do not.
hostile = st.sampled_from(
    [b'"', b'""', b",", b"\n", b"\r", b"\r\n", b"\n\n", b"\x00", b"\xff", b"\xed\xa0\x80", b"\xc0\x80",
     "é".encode(), b"x", b'"x"y', b'x"y', b"\xef\xbb\xbf", b",,,,", b" "]
)  # fmt: skip


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A CSV written by the csv module (any quoting, LF or CRLF), in one case of two damaged."""
    header = draw(st.sampled_from([["a", "b", "c"], ["c", "b", "a", "extra"], ["a", "b"]]))
    body = draw(st.lists(st.lists(field_text, min_size=len(header), max_size=len(header)), max_size=30))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    out = io.StringIO(newline="")
    # The writer quotes only its own terminator's characters: with "\n" a "\r" would go unquoted.
    writer = csv.writer(
        out, quoting=quoting if terminator == "\r\n" else csv.QUOTE_ALL, lineterminator=terminator
    )
    writer.writerow(header)
    writer.writerows(body)
    data = bytearray(out.getvalue().encode())
    if draw(st.booleans()):
        data = bytearray(codecs_bom()) + data
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(hostile)
    if draw(st.booleans()) and data.endswith(terminator.encode()):
        data = data[: -len(terminator)]  # no line end after the last record
    return bytes(data)


def codecs_bom() -> bytes:
    return b"\xef\xbb\xbf"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=csv_files(),
    batch_rows=st.integers(1, 12),
    batch_bytes=st.integers(1, 200),
    field_size_limit=st.sampled_from([8, 40, 1 << 20]),
)
def test_the_fast_path_reads_any_file_as_the_exact_reader(
    tmp_path: Path, small_blocks: None, data: bytes, batch_rows: int, batch_bytes: int, field_size_limit: int
) -> None:
    check_equivalent(
        tmp_path, data, batch_rows=batch_rows, batch_bytes=batch_bytes, field_size_limit=field_size_limit
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.lists(hostile, max_size=40), batch_rows=st.integers(1, 5))
def test_the_fast_path_reads_byte_noise_as_the_exact_reader(
    tmp_path: Path, small_blocks: None, noise: list[bytes], batch_rows: int
) -> None:
    check_equivalent(tmp_path, HEADER + b"".join(noise), batch_rows=batch_rows)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=csv_files())
def test_the_fast_path_reads_gzip_and_default_blocks_as_the_exact_reader(tmp_path: Path, data: bytes) -> None:
    check_equivalent(tmp_path, data, gz=True)


# --- the fast path is taken, and handed over where it must be -------------------------------------


def scan(data: bytes, *, block_bytes: int = 64, field_limit: int = 1 << 20) -> list[CsvBlock | Handover]:
    """The blocks of ``data`` after HEADER, with fields a, b, c picked."""
    stream = io.BytesIO(data)
    return list(
        csv_blocks(
            stream,
            head=b"",
            lines=1,
            width=3,
            picks=[0, 1, 2],
            field_limit=field_limit,
            block_bytes=block_bytes,
        )
    )


WELL_FORMED = b'1,"x, ""quoted""",plain\r\n2,"two\nlines",\xeb\xb4\x84\r\n3,"",""\r\n"4","a\r\nb","end"\n'


def test_canonical_records_are_all_taken_by_arrow_whatever_the_block_cuts() -> None:
    for block_bytes in (1, 7, 30, 1 << 20):
        found = scan(WELL_FORMED, block_bytes=block_bytes)
        assert all(isinstance(block, CsvBlock) for block in found), block_bytes
        values = [v for block in found for v in block.columns[1].to_pylist()]  # type: ignore[union-attr]
        assert values == ['x, "quoted"', "two\nlines", "", "a\r\nb"]


def test_a_last_record_without_line_end_is_taken() -> None:
    found = scan(b'1,2,3\n4,"5",6', block_bytes=1 << 20)
    assert all(isinstance(block, CsvBlock) for block in found)
    assert [v for block in found for v in block.columns[2].to_pylist()] == ["3", "6"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(b'5,"ab"c,6\n', id="text after a closing quote"),
        pytest.param(b'5,a"b,6\n', id="quote inside an unquoted field"),
        pytest.param(b"5,6\n", id="too few fields"),
        pytest.param(b"5,6,7,8\n", id="too many fields"),
        pytest.param(b"5,\xff,7\n", id="undecodable byte"),
        pytest.param(b"5,\xed\xa0\x80,7\n", id="encoded surrogate"),
        pytest.param(b"5,\x00,7\n", id="NUL"),
        pytest.param(b"5,6\r7\n", id="bare CR"),
        pytest.param(b"\n", id="blank line"),
        pytest.param(b"\r\n", id="blank CRLF line"),
        pytest.param(b'5,"6,7\n', id="a quote never closed"),
    ],
)
def test_a_damaged_record_hands_over_at_the_start_of_its_block(damage: bytes) -> None:
    good = b"1,2,3\n" * 20
    found = scan(good + damage + good, block_bytes=len(good))
    assert isinstance(found[0], CsvBlock)
    assert found[0].rows == 20
    assert isinstance(found[-1], Handover)
    assert found[-1].lines == 1 + 20  # the header and the first block's lines
    assert found[-1].rest.read() == damage + good


def test_a_record_longer_than_the_field_limit_hands_over() -> None:
    found = scan(b"1,2,3\n" + b"1," + b"x" * 100 + b",3\n", block_bytes=8, field_limit=50)
    assert isinstance(found[-1], Handover)
    assert found[-1].rest.read().startswith(b"1,xxx")


def test_files_outside_the_canonical_subset_are_read_exactly(tmp_path: Path) -> None:
    """The exact reader's own rejects come out of the fast path unchanged, line numbers included."""
    data = HEADER + b"1,2,3\r\n" * 5 + b'6,"bad"quote,7\r\n' + b"8,9\r\n" + b"1,2,3\r\n"
    exact = check_equivalent(tmp_path, data)
    assert not isinstance(exact, str)
    assert [(r.row, r.error_type, r.message.split(":")[0]) for r in exact[0].rejected] == [
        (6, "bad_quoting", "line 7"),
        (7, "wrong_field_count", "line 8"),
    ]


def test_block_chars_count_characters_not_bytes() -> None:
    block = scan("1,é,3\n4,봄,6\n".encode(), block_bytes=1 << 20)[0]
    assert isinstance(block, CsvBlock)
    assert block.chars(0, 2) == 12
    assert block.running_chars(1, 2).tolist() == [6]
    assert block.running_chars(0, 2).tolist() == [6, 12]
