"""Specifications for cardholder data: no full card number leaves a payments run, anywhere.

One payments day is published through the operator: sample part files (card payments, rows
failing rules with a card number on them) plus hand-made records the readers cannot parse, each
carrying a test PAN (wrong column count, bad quoting, invalid UTF-8, truncated JSON, a card number
as a JSON number). Every place the run writes to is then searched for the test PANs of
``testing/samples.py``, with and without separators.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import (
    DATE,
    Endpoints,
    Record,
    csv_line,
    decode_values,
    read_topic,
    statsd_admin,
    task_context,
    with_topic,
)

from kafka_ingest.operators.datasets import PaymentsToKafkaOperator
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import PAYMENT_COLUMNS, TEST_CARDS, write_day
from kafka_ingest.topics.payments import PAYMENTS

pytestmark = pytest.mark.integration

#: Each test PAN's digits, any (or no) single space or dash between two of them.
PAN_PATTERNS = [
    re.compile("(?<![0-9])" + "[ -]?".join(re.sub(r"[^0-9]", "", card)) + "(?![0-9])") for card in TEST_CARDS
]


def pans_in(text: str) -> list[str]:
    return [match.group(0) for pattern in PAN_PATTERNS for match in pattern.finditer(text)]


@dataclass
class PaymentsRun:
    summary: dict[str, Any]
    records: list[Record]
    values: list[dict[str, Any]]
    dlq: list[Record]
    logs: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""


def land_unreadable_records(folder: Path) -> None:
    """Records that never reach validation, and one that fails a rule, each with a full PAN."""
    good = {
        "payment_number": "PAY-90000001",
        "order_number": "ORD-90000001",
        "amount": "10.00",
        "currency": "USD",
        "method": "CARD",
        "status": "APPROVED",
        "card_number": "4111 1111 1111 1111",
        "paid_at": "2026-01-01T10:00:00Z",
    }
    values = [good[c] for c in PAYMENT_COLUMNS]
    card = PAYMENT_COLUMNS.index("card_number")
    surplus = [*values[:card], "6011000000000004", *values[card + 1 :], "5500-0000-0000-0004"]
    bad_quoting = [f'"{values[0]}"x', *values[1:]]
    bad_bytes = ["PAY-90000004", "ORD-BYTES", *values[2:]]
    csv_records = [PAYMENT_COLUMNS, values, surplus, bad_quoting, bad_bytes]
    csv_bytes = "".join(csv_line(v) for v in csv_records).encode().replace(b"BYTES", b"\xff\xfe")
    (folder / "part-0090.csv").write_bytes(csv_bytes)
    as_number = {**good, "payment_number": "PAY-90000005", "card_number": 4111111111111111}
    truncated = json.dumps({**good, "payment_number": "PAY-90000007"})[:140]
    held = {**good, "payment_number": "PAY-90000006", "status": "HELD", "card_number": "6011-0000-0000-0004"}
    jsonl = [json.dumps(as_number), truncated, json.dumps(held)]
    (folder / "part-0091.jsonl").write_text("\n".join(jsonl) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest,
    endpoints: Endpoints,
    module_topic: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> PaymentsRun:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None or not capture.is_globally_capturing():
        pytest.skip("needs pytest's output capture (do not run with -s)")
    root = tmp_path_factory.mktemp("payments")
    write_day(root, "payments", DATE, rows=240, formats=("csv", "jsonl.gz"), bad_ratio=0.15, duplicates=3)
    folder = root / "payments" / f"dt={DATE}"
    land_unreadable_records(folder)
    topic = module_topic("payments")
    provision_topics(
        endpoints.bootstrap, with_topic(PAYMENTS, topic), checkpoint_topic=endpoints.checkpoint_topic
    )
    operator = PaymentsToKafkaOperator(
        task_id="publish",
        extract_path=str(folder),
        extract_date=DATE,
        topic=topic,
        checkpoint_topic=endpoints.checkpoint_topic,
        batch_size=100,
        max_dlq_ratio=None,
    )
    handler = _Collect()
    root_logger = logging.getLogger()
    previous_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    capture.read_global_capture()  # what came before this run is not ours to judge
    try:
        summary = operator.execute(task_context())  # type: ignore[arg-type]
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(previous_level)
        out, err = capture.read_global_capture()
    records = read_topic(endpoints.bootstrap, topic)
    return PaymentsRun(
        summary=summary,
        records=records,
        values=decode_values(endpoints.registry_url, topic, records),
        dlq=read_topic(endpoints.bootstrap, f"{topic}.dlq"),
        logs=handler.lines,
        stdout=out,
        stderr=err,
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


def test_the_day_had_card_numbers_to_leak(run: PaymentsRun) -> None:
    """The search below is only worth something if the run saw full PANs in every form."""
    extract = "".join(
        path.read_bytes().decode("utf-8", "replace")
        for path in Path(run.summary["per_file"][0]["file"]).parent.glob("part-*")
        if not path.name.endswith(".gz")
    )
    assert {pattern.pattern for pattern in PAN_PATTERNS if pattern.search(extract)} == {
        pattern.pattern for pattern in PAN_PATTERNS
    }
    stages = {json.loads(record.value)["stage"] for record in run.dlq}
    assert stages == {"read", "validate"}
    assert any(v["card_last4"] for v in run.values)


def test_no_published_record_carries_a_card_number(run: PaymentsRun) -> None:
    assert [
        pans_in(json.dumps(value, default=str))
        for value in run.values
        if pans_in(json.dumps(value, default=str))
    ] == []
    assert [r.value for r in run.records if pans_in(r.value.decode("latin-1"))] == []


def test_no_dlq_record_carries_a_card_number(run: PaymentsRun) -> None:
    leaks = {record.row: pans_in(record.value.decode("utf-8", "replace")) for record in run.dlq}

    assert {row: found for row, found in leaks.items() if found} == {}
    masked = [json.loads(r.value)["original"] for r in run.dlq]
    assert any(isinstance(o, dict) and str(o.get("card_number", "")).endswith("1111") for o in masked)


def test_no_header_or_key_carries_a_card_number(run: PaymentsRun) -> None:
    texts = [
        f"{name}={value.decode('utf-8', 'replace')}"
        for record in [*run.records, *run.dlq]
        for name, value in record.raw_headers
    ] + [(r.key or b"").decode("utf-8", "replace") for r in [*run.records, *run.dlq]]

    assert [t for t in texts if pans_in(t)] == []


def test_no_log_line_carries_a_card_number(run: PaymentsRun) -> None:
    assert run.logs
    assert "247 rows read" in run.stdout  # the task's own log lines were captured
    assert [line for line in run.logs if pans_in(line)] == []
    assert pans_in(run.stdout) == []
    assert pans_in(run.stderr) == []


def test_the_xcom_summary_carries_no_card_number(run: PaymentsRun) -> None:
    assert pans_in(json.dumps(run.summary)) == []


def test_no_statsd_metric_carries_a_card_number(run: PaymentsRun, stack: Any) -> None:
    dump = "".join(
        statsd_admin(stack.statsd_host, stack.statsd_admin_port, command)
        for command in ("counters", "gauges", "timers", "stats")
    )

    assert "kafka_ingest" in dump
    assert pans_in(dump) == []
