"""Security of a hostile payments day: no full card number and no connection secret leaves the run.

A payments day carrying card numbers in every layout the contract allows (plain, dashes, spaces,
Amex grouping, a separator between every digit, 12 and 19 digits) — in the card column of valid
and invalid rows, on non-card methods, shifted into surplus CSV fields and into the key column,
inside raw lines that cannot be parsed, in JSON Lines as strings and numbers — is published by the
production DAG with ``dag.test()``, through connections that carry secrets: a SASL password in the
Kafka connection's extra (librdkafka takes ``sasl.*`` settings and ignores them on a PLAINTEXT
listener) and a basic-auth password on the registry connection (the local Apicurio has auth off).

Afterwards everything the run wrote is searched for every card number (digits with or without
separators, inside longer digit runs too) and both secrets: each record (decoded) and DLQ record
(raw), every header and key, the task logs (logging records, and stdout/stderr at file-descriptor
level, which is where ``dag.test()`` writes task logs and librdkafka its own), Airflow task log
files (``dag.test()`` writes none; checked anyway), rendered template fields, every XCom of the run,
and StatsD's whole admin dump. The stack's services must listen on loopback only (Airflow's own
log servers run only under ``airflow standalone``, not here, so they are not checked).
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import DATE, Endpoints, statsd_admin, with_topic

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import PaymentsToKafkaOperator
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.publish.dlq import MAX_KEY_CHARS
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.topics.payments import PAYMENTS

from .helpers import (
    COLUMNS,
    DLQ_ENVELOPE_MAX_BYTES,
    Lands,
    Outcome,
    PartFile,
    Rows,
    bound_sockets,
    csv_record,
    delete_dag,
    dlq,
    expectations,
    header,
    is_loopback,
    jsonl_record,
    landing_error,
    leaks,
    published,
    read_outcome,
    register_dag,
    run_rendered_fields,
    run_xcoms,
    stack_pids,
    task_log_files,
    unexpected_records,
    write_day,
)

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

PAYMENT = COLUMNS["payments"]
SASL_PASSWORD = f"s3cr3t-SASL-pw-{uuid.uuid4().hex[:8]}"
REGISTRY_PASSWORD = f"reg-pw-123-{uuid.uuid4().hex[:8]}"
KAFKA_CONN = "kafka_hostile_secret"
REGISTRY_CONN = "registry_hostile_secret"


# --------------------------------------------------------------------------- card numbers


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class Pans:
    """Distinct Luhn-valid card numbers, so a leak names the placement it came from."""

    def __init__(self) -> None:
        self._rng = random.Random("hostile/pans")
        self.issued: list[str] = []

    def __call__(self, length: int = 16, prefix: str = "4") -> str:
        body = prefix + "".join(self._rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
        pan = next(body + d for d in "0123456789" if _luhn_ok(body + d))
        self.issued.append(pan)
        return pan


def grouped(pan: str, sizes: tuple[int, ...], separators: str) -> str:
    """``pan`` cut into groups of ``sizes``, joined by ``separators`` in turn."""
    groups, start = [], 0
    for size in sizes:
        groups.append(pan[start : start + size])
        start += size
    out = groups[0]
    for index, group in enumerate(groups[1:]):
        out += separators[index % len(separators)] + group
    return out


#: Every layout EXTRACTS.md allows: 12-19 digits, spaces or dashes between them.
LAYOUTS: dict[str, Callable[[Pans], str]] = {
    "plain_16": lambda p: p(16),
    "dashes_4444": lambda p: grouped(p(16, "5"), (4, 4, 4, 4), "-"),
    "spaces_4444": lambda p: grouped(p(16, "6"), (4, 4, 4, 4), " "),
    "amex_465": lambda p: grouped(p(15, "37"), (4, 6, 5), " "),
    "mixed_separators": lambda p: grouped(p(16), (4, 4, 4, 4), " -"),
    "separator_between_every_digit": lambda p: "-".join(p(16)),
    "plain_12": lambda p: p(12),
    "plain_19": lambda p: p(19),
    "spaces_19": lambda p: grouped(p(19), (4, 4, 4, 4, 3), " "),
}


# --------------------------------------------------------------------------- the day


@dataclass
class Day:
    parts: list[PartFile]
    pans: list[str]
    huge_row: tuple[str, int] = ("", 0)
    long_key: tuple[str, int] = ("", 0)
    notes: dict[str, Any] = field(default_factory=dict)


def build_day() -> Day:
    pans, rows = Pans(), Rows("payments", "SEC")
    csv_part, jsonl_part = PartFile("part-0001.csv"), PartFile("part-0002.jsonl")
    gz_part = PartFile("part-0003.csv.gz")
    csv_part.add(header(PAYMENT))
    gz_part.add(header(PAYMENT))

    def card_row(**changes: Any) -> dict[str, Any]:
        return rows(method="CARD", **changes)

    for name, layout in LAYOUTS.items():
        row = card_row(card_number=layout(pans))
        csv_part.add(csv_record(PAYMENT, row), published(f"valid_card_{name}", row))
        row = card_row(card_number=layout(pans), status="PENDING")
        csv_part.add(csv_record(PAYMENT, row), dlq(f"invalid_row_card_{name}", "validate", "status_allowed"))
    for method in ("POINTS", "BANK_TRANSFER"):
        row = rows(method=method, card_number=grouped(pans(), (4, 4, 4, 4), " "))
        csv_part.add(
            csv_record(PAYMENT, row), dlq(f"card_on_{method}", "validate", "card_number_only_for_card")
        )
    valid = pans.issued.pop() if pans() else ""
    luhn_fail = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    pans.issued.append(luhn_fail)  # not Luhn-valid, still a card number the row meant to give
    csv_part.add(
        csv_record(PAYMENT, card_row(card_number=luhn_fail)),
        dlq("luhn_failure", "validate", "card_number_luhn"),
    )
    in_order_number = rows(order_number=pans(), status="HELD")
    csv_part.add(
        csv_record(PAYMENT, in_order_number),
        dlq("card_in_order_number_of_bad_row", "validate", "status_allowed"),
    )

    row = card_row(card_number=pans())
    surplus = csv_record(PAYMENT, row).replace(b"\r\n", f",{grouped(pans(), (4, 4, 4, 4), '-')}\r\n".encode())
    csv_part.add(surplus, dlq("card_in_one_surplus_field", "read", "wrong_field_count"))
    many = csv_record(PAYMENT, row | {"payment_number": "SEC-SURPLUS-2"}).replace(
        b"\r\n", f",x,{pans()},y,{grouped(pans(19), (4, 4, 4, 4, 3), ' ')}\r\n".encode()
    )
    csv_part.add(many, dlq("cards_in_many_surplus_fields", "read", "wrong_field_count"))
    shifted = f"{pans()},ORD-1,{grouped(pans(), (4, 4, 4, 4), ' ')},USD\r\n".encode()
    csv_part.add(shifted, dlq("card_shifted_into_the_key_column", "read", "wrong_field_count"))
    quoting = f'SEC-QUOTE,"ORD"x,10.00,USD,CARD,APPROVED,{pans()},2026-01-05T10:00:00Z\r\n'.encode()
    csv_part.add(quoting, dlq("card_in_line_with_bad_quoting", "read", "bad_quoting"))
    card = grouped(pans(), (4, 4, 4, 4), "-")
    latin1 = f"SEC-BYTES,ORD-\xff,10.00,USD,CARD,APPROVED,{card},2026-01-05T10:00:00Z\r\n"
    csv_part.add(latin1.encode("latin-1"), dlq("card_in_line_with_invalid_utf8", "read", "invalid_encoding"))
    long_line = f"SEC-LONG,{pans()}," + "z" * (1 << 20) + "\r\n"
    csv_part.add(long_line.encode(), dlq("card_in_line_over_the_limit", "read", "line_too_long"))
    huge = card_row(card_number=pans(), status="S" * 300_000, order_number="O" * 300_000)
    huge_row = (csv_part.name, csv_part.rows + 1)
    csv_part.add(csv_record(PAYMENT, huge), dlq("huge_row_with_card", "validate", "status_allowed"))
    long_key = card_row(card_number=pans(), payment_number="K" * (MAX_KEY_CHARS * 4))
    long_key_at = (csv_part.name, csv_part.rows + 1)
    csv_part.add(
        csv_record(PAYMENT, long_key), dlq("key_too_long_for_a_key", "validate", "payment_number_format")
    )
    last = card_row(card_number=pans())
    csv_part.add(csv_record(PAYMENT, last), published("valid_after_everything", last))

    ok = card_row(card_number=grouped(pans(), (4, 4, 4, 4), " "))
    jsonl_part.add(jsonl_record(ok), published("jsonl_valid_card", ok))
    number = card_row(card_number=pans())  # a JSON number is read as its digits: a valid card
    as_number = jsonl_record(number).replace(
        f'"{number["card_number"]}"'.encode(), number["card_number"].encode()
    )
    jsonl_part.add(as_number, published("card_as_json_number", number))
    truncated = jsonl_record(card_row(card_number=pans()))
    jsonl_part.add(
        truncated[: truncated.index(pans.issued[-1].encode()) + 20] + b"\n",
        dlq("card_in_truncated_json", "read", "invalid_json"),
    )
    jsonl_part.add(
        f'["{pans()}", "{grouped(pans(), (4, 4, 4, 4), "-")}"]\n'.encode(),
        dlq("card_in_json_array", "read", "not_an_object"),
    )
    hidden = card_row(card_number=pans(), note={"card": pans(), "again": grouped(pans(), (4, 4, 4, 4), " ")})
    jsonl_part.add(jsonl_record(hidden), published("card_in_unknown_nested_key", hidden))

    gz_row = card_row(card_number=grouped(pans(), (4, 4, 4, 4), "-"))
    gz_part.add(csv_record(PAYMENT, gz_row), published("gzip_valid_card", gz_row))
    gz_part.add(
        csv_record(PAYMENT, card_row(card_number=pans(), currency="XXX")),
        dlq("gzip_invalid_card_row", "validate", "currency_allowed"),
    )
    return Day([csv_part, jsonl_part, gz_part], pans.issued, huge_row, long_key_at)


DAY = build_day()
EXPECTED = expectations(DAY.parts)
SECRETS = [*DAY.pans, SASL_PASSWORD, REGISTRY_PASSWORD]


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    dag_run: Any
    outcome: Outcome
    logs: list[str]
    stdout: str
    stderr: str
    log_files: list[Path]


class _Collect(logging.Handler):
    """Every log record of the run, formatted, exceptions included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    schema_registry_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None or not capture.is_globally_capturing():
        pytest.skip("needs pytest's output capture (do not run with -s)")
    root = tmp_path_factory.mktemp("hostile-payments")
    write_day(root, "payments", DAY.parts)
    name = f"it-payments-hostile-sec-{uuid.uuid4().hex[:8]}"
    provision_topics(kafka_bootstrap, with_topic(PAYMENTS, name), checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC)
    kafka = {"bootstrap.servers": kafka_bootstrap, "sasl.username": "ingest", "sasl.password": SASL_PASSWORD}
    registry = {"conn_type": "schema_registry", "host": schema_registry_url, "login": "ingest"}
    handler, root_logger = _Collect(), logging.getLogger()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_VAR_EXTRACTS_ROOT", str(root))
        env.setenv(f"AIRFLOW_CONN_{KAFKA_CONN.upper()}", json.dumps({"conn_type": "kafka", "extra": kafka}))
        env.setenv(
            f"AIRFLOW_CONN_{REGISTRY_CONN.upper()}", json.dumps({**registry, "password": REGISTRY_PASSWORD})
        )
        dag = build_ingest_dag(
            PaymentsToKafkaOperator,
            dag_id=name.replace("-", "_"),
            topic=name,
            kafka_config_id=KAFKA_CONN,
            schema_registry_conn_id=REGISTRY_CONN,
            sensor_timeout=timedelta(seconds=30),
            poke_interval=timedelta(seconds=1),
        )
        register_dag(dag)
        previous_level = root_logger.level
        root_logger.addHandler(handler)
        root_logger.setLevel(logging.DEBUG)
        capture.read_global_capture()  # what came before this run is not ours to judge
        try:
            dag_run = dag.test(
                logical_date=datetime.fromisoformat(DATE).replace(tzinfo=UTC), run_conf={"max_dlq_ratio": 1}
            )
        finally:
            root_logger.removeHandler(handler)
            root_logger.setLevel(previous_level)
            out, err = capture.read_global_capture()
    endpoints = Endpoints(kafka_bootstrap, schema_registry_url, "")
    spec = with_topic(PAYMENTS, name)
    report = next((x for x in run_xcoms(dag_run) if isinstance(x, dict) and "per_file" in x), {})
    yield Run(
        dag_run, read_outcome(endpoints, spec, report), handler.lines, out, err, task_log_files(dag.dag_id)
    )
    delete_dag(dag.dag_id)


# --------------------------------------------------------------------------- the tests


def test_the_run_succeeded_through_the_connections_that_carry_the_secrets(run: Run) -> None:
    from kafka_ingest.hooks.kafka import TransactionalProducerHook

    assert run.dag_run.state == "success"
    task_output = run.stdout + "\n".join(run.logs)
    assert f"Schema registry connection {REGISTRY_CONN}: " in task_output
    assert "(basic auth: yes)" in task_output
    with pytest.MonkeyPatch.context() as env:  # what the producers were given
        extra = {"bootstrap.servers": "x:1", "sasl.password": SASL_PASSWORD}
        env.setenv(f"AIRFLOW_CONN_{KAFKA_CONN.upper()}", json.dumps({"conn_type": "kafka", "extra": extra}))
        assert TransactionalProducerHook(KAFKA_CONN).client_config()["sasl.password"] == SASL_PASSWORD


def test_the_extract_files_held_every_card_number_in_full(tmp_path: Path) -> None:
    """The searches below are worth something only if the input had what they look for."""
    files = write_day(tmp_path, "payments", DAY.parts, gzip_suffix=False)
    text = "".join(Path(f).read_bytes().decode("utf-8", "replace") for f in files)
    assert [pan for pan in DAY.pans if not leaks(text, [pan])] == []
    assert len(DAY.pans) >= 40


@pytest.mark.parametrize(("where", "lands"), [pytest.param(w, x, id=x.case) for w, x in EXPECTED.items()])
def test_each_card_number_placement_lands_where_the_contract_says(
    run: Run, where: tuple[str, int], lands: Lands
) -> None:
    assert landing_error(run.outcome, where, lands) is None


def test_nothing_else_reaches_either_topic(run: Run) -> None:
    assert unexpected_records(run.outcome, EXPECTED) == []


def test_published_records_carry_the_last_four_digits_and_no_card_number(run: Run) -> None:
    outcome = run.outcome
    decoded = json.dumps(list(outcome.values.values()), default=str)
    raw = "".join(r.value.decode("latin-1") for r in outcome.published.values())

    assert leaks(decoded, SECRETS) == []
    assert leaks(raw, SECRETS) == []
    assert all(len(v["card_last4"]) == 4 for v in outcome.values.values() if v["method"] == "CARD")


def test_no_dlq_record_carries_a_card_number_or_a_secret(run: Run) -> None:
    raw = "\n".join(r.value.decode("utf-8", "replace") for r in run.outcome.dlq.values())

    assert leaks(raw, SECRETS) == []
    assert "************" in raw  # masked, not dropped


def test_no_header_or_key_carries_a_card_number_or_a_secret(run: Run) -> None:
    records = [*run.outcome.published.values(), *run.outcome.dlq.values()]
    texts = [f"{k}={v.decode('utf-8', 'replace')}" for r in records for k, v in r.raw_headers]
    texts += [(r.key or b"").decode("utf-8", "replace") for r in records]

    assert leaks("\n".join(texts), SECRETS) == []


def test_no_log_line_output_or_task_log_file_carries_a_card_number_or_a_secret(run: Run) -> None:
    files = "".join(p.read_text(errors="replace") for p in run.log_files)

    assert "rows read" in run.stdout, "the task logs were not captured"
    assert leaks("\n".join(run.logs), SECRETS) == []
    assert leaks(run.stdout, SECRETS) == []
    assert leaks(run.stderr, SECRETS) == []
    assert leaks(files, SECRETS) == []


def test_no_rendered_template_field_carries_a_card_number_or_a_secret(run: Run) -> None:
    fields = run_rendered_fields(run.dag_run)

    assert fields, "no rendered fields were stored"
    assert leaks(json.dumps(fields, default=str), SECRETS) == []


def test_no_xcom_carries_a_card_number_or_a_secret(run: Run) -> None:
    xcoms = run_xcoms(run.dag_run)

    assert any(isinstance(x, dict) and x.get("per_file") for x in xcoms)
    assert leaks(json.dumps(xcoms, default=str), SECRETS) == []


def test_no_statsd_metric_carries_a_card_number_or_a_secret(run: Run, stack: Any) -> None:
    dump = "".join(
        statsd_admin(stack.statsd_host, stack.statsd_admin_port, command)
        for command in ("counters", "gauges", "timers")
    )

    assert "kafka_ingest" in dump
    assert leaks(dump, SECRETS) == []


def test_a_huge_row_gives_an_envelope_within_the_documented_bound_marked_truncated(run: Run) -> None:
    record = run.outcome.dlq[DAY.huge_row]
    envelope = json.loads(record.value)

    assert len(record.value) <= DLQ_ENVELOPE_MAX_BYTES
    assert envelope["truncated"] is True
    assert envelope["original"]["card_number"].startswith("************")


def test_a_key_too_long_to_be_a_key_gives_a_dlq_record_without_a_key(run: Run) -> None:
    record = run.outcome.dlq[DAY.long_key]

    assert record.key is None
    assert json.loads(record.value)["failed_rules"] == ["payment_number_format"]


def test_the_stacks_services_listen_on_loopback_only() -> None:
    import os

    sockets = bound_sockets(stack_pids(Path(os.environ["STACK_DIR"]) / "run"))

    assert {s.command for s in sockets} >= {"kafka", "schema-registry", "statsd"}
    assert [s for s in sockets if not is_loopback(s.address)] == []
