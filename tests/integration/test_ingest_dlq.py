"""Specifications for the dead-letter topic: every rule of EXTRACTS.md, every unreadable record.

Per dataset one day is landed by hand: ``part-0001.csv`` has one row per way of breaking a rule of
the contract (between valid rows), ``part-0002.csv`` the records the CSV reader cannot read (wrong
column count, bad quoting, invalid UTF-8) and a duplicate of a key of part 1, ``part-0003.jsonl``
a truncated JSON line. The day is published once; the tests read ``<topic>.dlq`` back
read_committed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import (
    DATE,
    RUN,
    Endpoints,
    Record,
    Row,
    by_source,
    csv_line,
    csv_text,
    jsonl_line,
    read_topic,
    run_job,
    with_topic,
)

from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.samples import ORDER_COLUMNS, PAYMENT_COLUMNS, order_row, payment_row
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS

pytestmark = pytest.mark.integration

Mutation = Callable[[Row], None]


def _items_total(items: list[dict[str, Any]]) -> str:
    return f"{sum(Decimal(i['unit_price']) * i['quantity'] for i in items):.2f}"


def _with_items(row: Row, items: list[dict[str, Any]]) -> None:
    row.update(items=items, total_price=_items_total(items) if items else "0.00")


#: (rule the row must fail, case, mutation of a valid row): every rule of the Orders table.
ORDER_CASES: list[tuple[str, str, Mutation]] = [
    ("order_number_format", "missing", lambda r: r.update(order_number="")),
    ("order_number_format", "lower_case", lambda r: r.update(order_number=r["order_number"].lower())),
    ("order_number_format", "leading_dash", lambda r: r.update(order_number="-" + r["order_number"])),
    ("order_number_format", "65_chars", lambda r: r.update(order_number="A" * 65)),
    ("order_number_format", "underscore", lambda r: r.update(order_number="ORD_1")),
    ("user_id_required", "empty", lambda r: r.update(user_id="")),
    ("user_id_required", "blank", lambda r: r.update(user_id="   ")),
    ("status_allowed", "wrong_case", lambda r: r.update(status="created")),
    ("status_allowed", "unknown", lambda r: r.update(status="RETURNED")),
    ("items_valid", "no_items", lambda r: _with_items(r, [])),
    ("items_valid", "zero_quantity", lambda r: _with_items(r, [{**r["items"][0], "quantity": 0}])),
    ("items_valid", "negative_price", lambda r: _with_items(r, [{**r["items"][0], "unit_price": "-1.00"}])),
    ("items_valid", "not_json", lambda r: r.update(items="P-1 x 2")),
    ("total_price_format", "three_places", lambda r: r.update(total_price="12.345")),
    ("total_price_format", "not_a_number", lambda r: r.update(total_price="twelve")),
    ("total_price_non_negative", "negative", lambda r: r.update(total_price="-1.00")),
    (
        "total_matches_items",
        "one_more",
        lambda r: r.update(total_price=f"{Decimal(r['total_price']) + 1:.2f}"),
    ),
    (
        "total_matches_items",
        "one_cent_less",
        lambda r: r.update(total_price=f"{Decimal(r['total_price']) - Decimal('0.01'):.2f}"),
    ),
    ("currency_allowed", "unknown", lambda r: r.update(currency="GBP")),
    ("currency_allowed", "lower_case", lambda r: r.update(currency="usd")),
    ("created_at_with_offset", "no_offset", lambda r: r.update(created_at=r["created_at"].rstrip("Z"))),
    ("created_at_with_offset", "not_a_date", lambda r: r.update(created_at="2026-02-30T10:00:00Z")),
    ("created_at_with_offset", "missing", lambda r: r.update(created_at="")),
]

#: The same for the Payments table.
PAYMENT_CASES: list[tuple[str, str, Mutation]] = [
    ("payment_number_format", "missing", lambda r: r.update(payment_number="")),
    ("payment_number_format", "lower_case", lambda r: r.update(payment_number=r["payment_number"].lower())),
    ("payment_number_format", "underscore", lambda r: r.update(payment_number="PAY_" + r["payment_number"])),
    ("order_number_format", "missing", lambda r: r.update(order_number="")),
    ("order_number_format", "leading_dash", lambda r: r.update(order_number="-ORD-1")),
    ("amount_format", "three_places", lambda r: r.update(amount="12.345")),
    ("amount_format", "exponent", lambda r: r.update(amount="1e3")),
    ("amount_positive", "zero", lambda r: r.update(amount="0.00")),
    ("amount_positive", "negative", lambda r: r.update(amount="-5.00")),
    ("currency_allowed", "lower_case", lambda r: r.update(currency="usd")),
    ("method_allowed", "unknown", lambda r: r.update(method="CASH", card_number="")),
    ("status_allowed", "unknown", lambda r: r.update(status="PENDING")),
    ("card_number_only_for_card", "card_without_number", lambda r: r.update(method="CARD", card_number="")),
    (
        "card_number_only_for_card",
        "number_without_card",
        lambda r: r.update(method="POINTS", card_number="4111111111111111"),
    ),
    (
        "card_number_luhn",
        "bad_check_digit",
        lambda r: r.update(method="CARD", card_number="4111111111111112"),
    ),
    ("card_number_luhn", "11_digits", lambda r: r.update(method="CARD", card_number="41111111113")),
    ("card_number_luhn", "letters", lambda r: r.update(method="CARD", card_number="4111-1111-1111-111X")),
    ("paid_at_with_offset", "no_offset", lambda r: r.update(paid_at="2026-01-05T10:00:00")),
    ("paid_at_with_offset", "not_a_date", lambda r: r.update(paid_at="2026-02-30T10:00:00+09:00")),
]

READ_ERRORS = ("wrong_field_count", "bad_quoting", "invalid_encoding", "invalid_json")
SPECS = {"orders": ORDERS, "payments": PAYMENTS}
COLUMNS = {"orders": ORDER_COLUMNS, "payments": PAYMENT_COLUMNS}


def valid_row(dataset: str, index: int, rng: random.Random) -> Row:
    if dataset == "orders":
        return order_row(index, rng)
    row = payment_row(index, rng)
    row.update(method="CARD", card_number="5500-0000-0000-0004")  # a PAN in every row, to be masked
    return row


@dataclass
class LandedDay:
    """The hand-made day and what each of its rejected rows must become."""

    spec: TopicSpec
    files: list[str]
    rows: dict[tuple[str, int], Row | str]
    #: (file name, row) -> (stage, rule or read error type)
    rejected: dict[tuple[str, int], tuple[str, str]]
    cases: dict[tuple[str, str], tuple[str, int]]
    summary: dict[str, Any]
    dlq: dict[tuple[str, int], Record]
    published: dict[tuple[str, int], Record]

    def dlq_record(self, where: tuple[str, int]) -> tuple[Record, dict[str, Any]]:
        record = self.dlq[where]
        return record, json.loads(record.value)


def land_day(root: Path, dataset: str) -> tuple[list[str], dict[tuple[str, int], Any], dict, dict]:
    """Write the three part files; return files, rows, expected rejections and case positions."""
    rng = random.Random(f"dlq/{dataset}")
    columns = COLUMNS[dataset]
    key = SPECS[dataset].key_field
    cases = ORDER_CASES if dataset == "orders" else PAYMENT_CASES
    folder = root / dataset / f"dt={DATE}"
    folder.mkdir(parents=True)
    rows: dict[tuple[str, int], Any] = {}
    rejected: dict[tuple[str, int], tuple[str, str]] = {}
    positions: dict[tuple[str, str], tuple[str, int]] = {}
    index = 0

    def next_row() -> Row:
        nonlocal index
        index += 1
        return valid_row(dataset, index, rng)

    first = "part-0001.csv"
    part1: list[Row] = [next_row()]
    for rule, case, mutate in cases:
        row = next_row()
        mutate(row)
        part1.append(row)
        where = (first, len(part1))
        rejected[where] = ("validate", rule)
        positions[(rule, case)] = where
        part1.append(next_row())
    (folder / first).write_text(csv_text(columns, part1), encoding="utf-8")
    rows.update({(first, n): row for n, row in enumerate(part1, start=1)})

    second = "part-0002.csv"
    lines: list[bytes] = []
    duplicate = next_row()
    duplicate[key] = part1[0][key]
    for error in ("key_unique_in_day", "wrong_field_count", "bad_quoting", "invalid_encoding"):
        row = next_row()
        lines.append(csv_line([row[c] for c in columns]).encode())
        rows[(second, len(lines))] = row
        if error == "key_unique_in_day":
            line = csv_line([duplicate[c] for c in columns]).encode()
            rows[(second, len(lines) + 1)] = duplicate
            positions[("key_unique_in_day", "earlier_file")] = (second, len(lines) + 1)
            rejected[(second, len(lines) + 1)] = ("validate", "key_unique_in_day")
        else:
            line = broken_csv_line(next_row(), columns, error)
            rows[(second, len(lines) + 1)] = line.decode("utf-8", "replace")
            rejected[(second, len(lines) + 1)] = ("read", error)
        lines.append(line)
    last = next_row()
    lines.append(csv_line([last[c] for c in columns]).encode())
    rows[(second, len(lines))] = last
    (folder / second).write_bytes(csv_line(columns).encode() + b"".join(lines))

    third = "part-0003.jsonl"
    valid_before, valid_after = next_row(), next_row()
    truncated = jsonl_line(next_row())[:60] + "\n"
    (folder / third).write_text(
        jsonl_line(valid_before) + truncated + jsonl_line(valid_after), encoding="utf-8"
    )
    rows.update({(third, 1): valid_before, (third, 2): truncated, (third, 3): valid_after})
    rejected[(third, 2)] = ("read", "invalid_json")
    (folder / "_SUCCESS").touch()
    files = [str(folder / name) for name in (first, second, third)]
    return files, rows, rejected, positions


def broken_csv_line(row: Row, columns: tuple[str, ...], error: str) -> bytes:
    values = [row[c] for c in columns]
    if error == "wrong_field_count":
        return csv_line([*values, "one too many"]).encode()
    if error == "bad_quoting":
        return (csv_line(values[:1]).rstrip("\r\n") + ',"quoted"then text,' + csv_line(values[2:])).encode()
    assert error == "invalid_encoding"
    values[1] = "BYTES"
    return csv_line(values).encode().replace(b"BYTES", b"latin-1 \xe9t\xe9 \xff")


def publish_landed_day(endpoints: Endpoints, topic: str, root: Path, dataset: str) -> LandedDay:
    spec = with_topic(SPECS[dataset], topic)
    files, rows, rejected, cases = land_day(root, dataset)
    summary = run_job(endpoints, spec, files, batch_size=25)
    dlq = by_source(read_topic(endpoints.bootstrap, spec.dlq_topic))
    published = by_source(read_topic(endpoints.bootstrap, spec.topic))
    return LandedDay(spec, files, rows, rejected, cases, summary, dlq, published)


@pytest.fixture(scope="module")
def orders_day(
    endpoints: Endpoints, module_topic: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> LandedDay:
    return publish_landed_day(endpoints, module_topic("orders"), tmp_path_factory.mktemp("orders"), "orders")


@pytest.fixture(scope="module")
def payments_day(
    endpoints: Endpoints, module_topic: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> LandedDay:
    return publish_landed_day(
        endpoints, module_topic("payments"), tmp_path_factory.mktemp("payments"), "payments"
    )


def landed(request: pytest.FixtureRequest, dataset: str) -> LandedDay:
    """The module's published day of ``dataset``."""
    day: LandedDay = request.getfixturevalue(f"{dataset}_day")
    return day


def rule_cases() -> list[Any]:
    return [
        pytest.param(dataset, rule, case, id=f"{dataset}-{rule}-{case}")
        for dataset, cases in (("orders", ORDER_CASES), ("payments", PAYMENT_CASES))
        for rule, case, _ in [*cases, ("key_unique_in_day", "earlier_file", None)]
    ]


@pytest.mark.parametrize(("dataset", "rule", "case"), rule_cases())
def test_a_row_breaking_a_rule_lands_in_the_dlq_at_stage_validate_naming_the_rule(
    request: pytest.FixtureRequest, dataset: str, rule: str, case: str
) -> None:
    day = landed(request, dataset)
    where = day.cases[(rule, case)]

    _, envelope = day.dlq_record(where)

    assert envelope["stage"] == "validate"
    assert envelope["error_type"] == "ExpectationFailed"
    assert rule in envelope["failed_rules"], envelope["failed_rules"]
    assert rule in envelope["error_message"]
    assert where not in day.published


@pytest.mark.parametrize("dataset", sorted(SPECS))
@pytest.mark.parametrize("error", READ_ERRORS)
def test_an_unreadable_record_lands_in_the_dlq_at_stage_read_with_its_row_number(
    request: pytest.FixtureRequest, dataset: str, error: str
) -> None:
    day = landed(request, dataset)
    where = next(w for w, (stage, what) in day.rejected.items() if (stage, what) == ("read", error))

    record, envelope = day.dlq_record(where)

    assert envelope["stage"] == "read"
    assert envelope["error_type"] == error
    assert envelope["source"]["row"] == where[1] == record.row
    assert envelope["source"]["file"].endswith(where[0])
    assert envelope["failed_rules"] == []
    assert envelope["original"]


@pytest.mark.parametrize("dataset", sorted(SPECS))
def test_the_dlq_holds_exactly_the_rejected_rows_and_the_topic_every_other_row(
    request: pytest.FixtureRequest, dataset: str
) -> None:
    day = landed(request, dataset)

    assert set(day.dlq) == set(day.rejected)
    assert set(day.published) == set(day.rows) - set(day.rejected)
    assert day.summary["dlq"] == len(day.rejected)
    assert day.summary["published"] == len(day.rows) - len(day.rejected)
    by_stage: dict[str, int] = {}
    for stage, _ in day.rejected.values():
        by_stage[stage] = by_stage.get(stage, 0) + 1
    totals: dict[str, int] = {}
    for per_file in day.summary["per_file"]:
        for stage, count in per_file["dlq_by_stage"].items():
            totals[stage] = totals.get(stage, 0) + count
    assert totals == by_stage


@pytest.mark.parametrize("dataset", sorted(SPECS))
def test_a_dlq_envelope_says_what_failed_where_the_row_came_from_and_which_run_read_it(
    request: pytest.FixtureRequest, dataset: str
) -> None:
    day = landed(request, dataset)
    rule = "status_allowed"
    where = day.cases[(rule, "unknown")]
    started = datetime.now(UTC)

    _, envelope = day.dlq_record(where)

    assert set(envelope) == {
        "topic",
        "stage",
        "error_type",
        "error_message",
        "failed_rules",
        "source",
        "run",
        "timestamp",
        "original",
        "truncated",
    }
    assert envelope["topic"] == day.spec.topic
    assert envelope["failed_rules"] == [rule]
    assert envelope["source"] == {
        "dataset": dataset,
        "date": DATE,
        "file": next(f for f in day.files if f.endswith(where[0])),
        "row": where[1],
    }
    assert envelope["run"] == RUN.as_dict()
    written = datetime.fromisoformat(envelope["timestamp"])
    assert written.utcoffset() == timedelta(0)
    assert started - timedelta(minutes=5) < written <= started
    assert envelope["truncated"] is False


@pytest.mark.parametrize("dataset", sorted(SPECS))
def test_the_dlq_keeps_the_original_row_as_read_with_the_card_number_masked(
    request: pytest.FixtureRequest, dataset: str
) -> None:
    day = landed(request, dataset)
    where = day.cases[("status_allowed", "unknown")]
    row = day.rows[where]
    assert isinstance(row, dict)

    _, envelope = day.dlq_record(where)

    expected = {c: json.dumps(v, separators=(",", ":")) if isinstance(v, list) else v for c, v in row.items()}
    if dataset == "payments":
        assert envelope["original"]["card_number"] == "************0004"
        expected["card_number"] = "************0004"
    assert {c: envelope["original"][c] for c in expected if c != "items"} == {
        c: v for c, v in expected.items() if c != "items"
    }
    if dataset == "orders":
        assert json.loads(envelope["original"]["items"]) == row["items"]


@pytest.mark.parametrize("dataset", sorted(SPECS))
def test_every_dlq_record_carries_stage_error_type_and_source_headers_and_the_rows_key(
    request: pytest.FixtureRequest, dataset: str
) -> None:
    day = landed(request, dataset)
    key_field = day.spec.key_field

    for where, record in day.dlq.items():
        stage, _ = day.rejected[where]
        envelope = json.loads(record.value)
        assert record.header("dlq.stage") == stage
        assert record.header("dlq.error_type") == envelope["error_type"]
        assert record.header("source.file") == envelope["source"]["file"]
        assert record.row == where[1]
        original = envelope["original"]
        if isinstance(original, dict) and original.get(key_field) and stage == "validate":
            assert record.key == original[key_field].encode()
