"""Specifications for what a valid row becomes on its topic, for every extract format.

One day per dataset, one part file per format (CSV, CSV.gz, JSONL, JSONL.gz, Parquet), published
once in small batches; each test then looks at one file's records, read back read_committed and
decoded by confluent-kafka's ``AvroDeserializer`` against the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import (
    EXPECTED_RECORD,
    RUN,
    Endpoints,
    Record,
    decode_values,
    read_topic,
    run_job,
    source_rows,
    with_topic,
)

from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS

pytestmark = pytest.mark.integration

FORMATS = ("csv", "csv.gz", "jsonl", "jsonl.gz", "parquet")
SPECS = {"orders": ORDERS, "payments": PAYMENTS}
ROWS_PER_FILE = 120
BATCH_SIZE = 70  # two transactions per file


@dataclass
class PublishedDay:
    spec: TopicSpec
    manifest: DayManifest
    summary: dict[str, Any]
    records: list[Record]
    values: list[dict[str, Any]]

    def file(self, fmt: str) -> str:
        return next(f for f in self.manifest.files if f.endswith(f".{fmt}"))

    def published_from(self, fmt: str) -> list[tuple[Record, dict[str, Any]]]:
        name = Path(self.file(fmt)).name
        return [(r, v) for r, v in zip(self.records, self.values, strict=True) if r.file_name == name]


def publish_day(endpoints: Endpoints, topic: str, root: Path, dataset: str) -> PublishedDay:
    spec = with_topic(SPECS[dataset], topic)
    manifest = write_day(
        root, dataset, "2026-01-01", rows=ROWS_PER_FILE * len(FORMATS), formats=FORMATS, bad_ratio=0.03
    )
    summary = run_job(endpoints, spec, manifest.files, batch_size=BATCH_SIZE)
    records = read_topic(endpoints.bootstrap, spec.topic)
    return PublishedDay(
        spec, manifest, summary, records, decode_values(endpoints.registry_url, spec.topic, records)
    )


@pytest.fixture(scope="module")
def orders_day(
    endpoints: Endpoints, module_topic: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> PublishedDay:
    return publish_day(endpoints, module_topic("orders"), tmp_path_factory.mktemp("orders"), "orders")


@pytest.fixture(scope="module")
def payments_day(
    endpoints: Endpoints, module_topic: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> PublishedDay:
    return publish_day(endpoints, module_topic("payments"), tmp_path_factory.mktemp("payments"), "payments")


@pytest.fixture(params=sorted(SPECS))
def day(request: pytest.FixtureRequest) -> PublishedDay:
    day: PublishedDay = request.getfixturevalue(f"{request.param}_day")
    return day


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_valid_row_of_the_file_is_published_once(day: PublishedDay, fmt: str) -> None:
    name = Path(day.file(fmt)).name
    rows = source_rows(day.file(fmt))
    valid = [n for n in range(1, len(rows) + 1) if (name, n) not in day.manifest.rejected]

    published_rows = sorted(record.row for record, _ in day.published_from(fmt))

    assert published_rows == valid
    assert len(valid) > 100


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_field_of_every_published_record_equals_its_source_row(day: PublishedDay, fmt: str) -> None:
    rows = source_rows(day.file(fmt))
    expected = EXPECTED_RECORD[day.spec.dataset]

    mismatched = [
        (record.row, value, expected(rows[record.row - 1]))
        for record, value in day.published_from(fmt)
        if value != expected(rows[record.row - 1])
    ]

    assert day.published_from(fmt)
    assert mismatched == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_record_key_is_the_rows_key_field(day: PublishedDay, fmt: str) -> None:
    rows = source_rows(day.file(fmt))
    key_field = day.spec.key_field

    keys = [(record.key, rows[record.row - 1][key_field].encode()) for record, _ in day.published_from(fmt)]

    assert keys
    assert all(actual == expected for actual, expected in keys)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_record_carries_its_event_type_source_and_run_headers(day: PublishedDay, fmt: str) -> None:
    file = day.file(fmt)
    expected = {
        "event_type": day.spec.event_type,
        "source.file": file,
        "dag_id": RUN.dag_id,
        "run_id": RUN.run_id,
        "task_id": RUN.task_id,
    }

    for record, _ in day.published_from(fmt):
        assert {name: record.header(name) for name in expected} == expected
        assert 1 <= record.row <= ROWS_PER_FILE
        assert record.header("correlation_id")
        assert [name for name, _ in record.raw_headers].count("correlation_id") == 1


def test_money_is_decimal_and_times_are_utc(day: PublishedDay) -> None:
    money = "total_price" if day.spec.dataset == "orders" else "amount"
    time = "created_at" if day.spec.dataset == "orders" else "paid_at"

    for value in day.values:
        assert type(value[money]).__name__ == "Decimal"
        assert value[money].as_tuple().exponent == -2
        assert value[time].utcoffset().total_seconds() == 0


def test_payments_carry_only_the_cards_last_four_digits(payments_day: PublishedDay) -> None:
    values = payments_day.values
    cards = [v for v in values if v["method"] == "CARD"]

    assert cards
    assert all(len(v["card_last4"]) == 4 and v["card_last4"].isdigit() for v in cards)
    assert all(v["card_last4"] is None for v in values if v["method"] != "CARD")
    assert all("card_number" not in v for v in values)


def test_the_summary_counts_every_row_once(day: PublishedDay) -> None:
    assert day.summary["files"] == len(FORMATS)
    assert day.summary["rows_read"] == day.manifest.rows
    assert day.summary["published"] == len(day.manifest.published) == len(day.records)
    assert day.summary["dlq"] == len(day.manifest.rejected)
    assert day.summary["skipped"] == 0
    assert day.summary["batches"] == 2 * len(FORMATS)


def test_the_same_row_gets_the_same_correlation_id_when_a_day_is_republished(
    endpoints: Endpoints, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    spec = with_topic(ORDERS, unique_name("orders"))
    manifest = write_day(tmp_path, "orders", "2026-01-01", rows=60, formats=("jsonl",), bad_ratio=0)
    run_job(endpoints, spec, manifest.files, batch_size=100)
    second = type(RUN)(RUN.dag_id, "it_run_2", RUN.task_id, RUN.map_index, 1)
    run_job(endpoints, spec, manifest.files, batch_size=100, run=second, reprocess=True)

    records = read_topic(endpoints.bootstrap, spec.topic)
    ids: dict[str, dict[bytes | None, str]] = {"it_run_1": {}, "it_run_2": {}}
    for record in records:
        ids[record.header("run_id")][record.key] = record.header("correlation_id")

    assert len(ids["it_run_1"]) == len(manifest.published) == 60
    assert ids["it_run_1"] == ids["it_run_2"]
    assert len(set(ids["it_run_1"].values())) == 60
