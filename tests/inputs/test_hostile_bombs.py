"""Inputs built to exhaust memory, time or the broker: each run in a fresh process, its peak RSS bounded.

The bound, :data:`MAX_RSS_MIB`, is what a small valid day needs (the job's imports — pandas,
pyarrow, Great Expectations, fastavro — are ~310 MiB) plus headroom, and far below what any of
these inputs would need if a reader held it whole: the gzip bomb alone expands to
:data:`GZIP_BOMB_MIB` of text.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import DATE, Endpoints, read_topic, with_topic

from kafka_ingest.read import FIELD_SIZE_LIMIT
from kafka_ingest.topics.orders import ORDERS

from .helpers import (
    BROKER_MAX_BYTES,
    COLUMNS,
    DLQ_ENVELOPE_MAX_BYTES,
    Lands,
    Outcome,
    PartFile,
    Rows,
    csv_record,
    dlq,
    expectations,
    header,
    landing_error,
    published,
    read_outcome,
    run_in_child,
    unexpected_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDER = COLUMNS["orders"]
MAX_RSS_MIB = 512
GZIP_BOMB_MIB = 1024
BLANK_LINES = 3_000_000
_MEMBER_MIB = 16


def gzip_bomb(rows: Rows) -> PartFile:
    """~1 MiB of gzip that expands to a valid row, one 1 GiB line, and another valid row."""
    part = PartFile("part-0001.csv.gz")
    before, after = rows(), rows()
    part.add(gzip.compress(header(ORDER) + csv_record(ORDER, before)), published("before_gzip_bomb", before))
    member = gzip.compress(b"A" * (_MEMBER_MIB << 20), compresslevel=9)  # gzip members concatenate
    part.add(member * (GZIP_BOMB_MIB // _MEMBER_MIB), dlq("gzip_bomb_line", "read", "line_too_long"))
    part.add(gzip.compress(b"\r\n" + csv_record(ORDER, after)), published("after_gzip_bomb", after))
    return part


def blank_line_bomb(rows: Rows) -> PartFile:
    """Millions of empty lines (LF and CRLF) between two valid rows: not records, not rejects."""
    part = PartFile("part-0002.csv")
    before, after = rows(), rows()
    part.add(header(ORDER) + csv_record(ORDER, before), published("before_blank_lines", before))
    part.add(b"\n" * (BLANK_LINES // 2) + b"\r\n" * (BLANK_LINES // 2))
    part.add(csv_record(ORDER, after), published("after_blank_lines", after))
    return part


def oversized(rows: Rows) -> PartFile:
    """Fields over the reader's limit, a record over the broker's, a key of a megabyte."""
    part = PartFile("part-0003.csv")
    part.add(header(ORDER))
    limit = FIELD_SIZE_LIMIT

    def add(data: bytes, landing: Lands) -> None:
        part.add(data, landing)
        row = rows()
        part.add(csv_record(ORDER, row), published(f"valid_after_{landing.case}", row))

    add(
        csv_record(ORDER, rows(coupon_code="C" * (limit + 10))),
        dlq("field_over_limit_one_line", "read", "line_too_long"),
    )
    half = "D" * (limit // 2 + 10) + "\r\n"
    add(
        csv_record(ORDER, rows(coupon_code=half * 2)),
        dlq("field_over_limit_many_lines", "read", "field_too_large"),
    )
    # 3-byte characters: ~420k characters of JSON (under the field limit), ~1.2 MB of Avro.
    items = [{"product_id": "가" * 1000, "quantity": 1, "unit_price": "1.00"} for _ in range(400)]
    add(
        csv_record(ORDER, rows(items=items, total_price="400.00")),
        dlq("record_over_broker_limit", "produce", "RecordTooLarge"),
    )
    add(
        csv_record(ORDER, rows(order_number="K" * (limit - 1000))),
        dlq("key_of_a_megabyte", "validate", "order_number_format"),
    )
    return part


CORPUS_ROWS = Rows("orders", "HB")
CORPUS = [gzip_bomb(CORPUS_ROWS), blank_line_bomb(CORPUS_ROWS), oversized(CORPUS_ROWS)]
EXPECTED = expectations(CORPUS)
CASES = [pytest.param(where, lands, id=lands.case) for where, lands in EXPECTED.items()]


def land(root: Path, parts: list[PartFile]) -> list[str]:
    folder = root / "orders" / f"dt={DATE}"
    folder.mkdir(parents=True)
    for part in parts:
        (folder / part.name).write_bytes(part.data())  # gzip members are already compressed
    return [str(folder / part.name) for part in parts]


@pytest.fixture(scope="module")
def run(
    endpoints: Endpoints, module_topic: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Outcome]:
    files = land(tmp_path_factory.mktemp("bombs"), CORPUS)
    topic = module_topic("orders")
    child = run_in_child(endpoints, "orders", topic, files)
    assert "error" not in child, child.get("error")
    return child, read_outcome(endpoints, with_topic(ORDERS, topic), child["summary"])


@pytest.mark.parametrize(("where", "lands"), CASES)
def test_each_oversized_record_lands_where_the_contract_says(
    run: tuple[dict[str, Any], Outcome], where: tuple[str, int], lands: Lands
) -> None:
    assert landing_error(run[1], where, lands) is None


def test_nothing_else_reaches_either_topic(run: tuple[dict[str, Any], Outcome]) -> None:
    assert unexpected_records(run[1], EXPECTED) == []


def test_peak_memory_stays_bounded_whatever_the_files_expand_to(run: tuple[dict[str, Any], Outcome]) -> None:
    child, _ = run
    assert CORPUS[0].size < 2 << 20  # the gzip bomb is small on disk
    assert child["maxrss_mib"] < MAX_RSS_MIB, f"peak RSS {child['maxrss_mib']:.0f} MiB"
    print(f"bombs: peak RSS {child['maxrss_mib']:.0f} MiB")


def test_millions_of_blank_lines_are_no_records_and_no_dlq_flood(run: tuple[dict[str, Any], Outcome]) -> None:
    per_file = {Path(f["file"]).name: f for f in run[0]["summary"]["per_file"]}
    blank = per_file["part-0002.csv"]
    assert (blank["rows_read"], blank["published"], blank["dlq"]) == (2, 2, 0)


def test_every_dlq_envelope_and_record_stays_under_the_bounds(run: tuple[dict[str, Any], Outcome]) -> None:
    outcome = run[1]
    for where, record in outcome.dlq.items():
        size = (
            len(record.value) + len(record.key or b"") + sum(len(k) + len(v) for k, v in record.raw_headers)
        )
        assert len(record.value) <= DLQ_ENVELOPE_MAX_BYTES, where
        assert size < BROKER_MAX_BYTES, where
    cut = {where for where in outcome.dlq if outcome.envelope(where)["truncated"]}
    assert {EXPECTED[where].case for where in cut} >= {"key_of_a_megabyte"}


def test_a_record_too_large_for_the_broker_keeps_its_row_in_the_dlq(
    run: tuple[dict[str, Any], Outcome],
) -> None:
    outcome = run[1]
    where = next(w for w, lands in EXPECTED.items() if lands.case == "record_over_broker_limit")

    envelope = outcome.envelope(where)

    assert envelope["source"]["row"] == where[1]
    assert outcome.dlq[where].key == envelope["original"]["order_number"].encode()
    assert envelope["original"]["status"]
    assert envelope["original"]["items"].startswith('[{"product_id":"가')
    assert envelope["truncated"] is True


def test_a_flood_of_invalid_rows_is_stopped_by_the_error_budget_before_the_dlq_fills(
    endpoints: Endpoints, module_topic: Callable[[str], str], tmp_path: Path
) -> None:
    rows = Rows("orders", "HF")
    part = PartFile("part-0001.csv")
    part.add(header(ORDER) + csv_record(ORDER, rows()))
    part.add(b",,,,,,,\n" * 200_000)
    topic, files = module_topic("flood"), land(tmp_path, [part])

    child = run_in_child(endpoints, "orders", topic, files, max_dlq_ratio=0.1, batch_size=10_000)

    assert child["error"]["type"] == "BudgetExceeded", child
    assert "Error budget exceeded" in child["error"]["message"]
    assert read_topic(endpoints.bootstrap, f"{topic}.dlq") == []
    # One batch of rejects is held before the budget aborts it: bounded by the batch size.
    assert child["maxrss_mib"] < MAX_RSS_MIB, f"peak RSS {child['maxrss_mib']:.0f} MiB"
    print(f"error-budget flood: peak RSS {child['maxrss_mib']:.0f} MiB")
