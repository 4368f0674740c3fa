"""What the ingestion integration tests share: running a job, reading topics back, the source rows.

Everything here reads the stack the way a downstream consumer would: ``read_topic`` (from
``kafka_ingest.testing.topics``, the one reader of the tests, the demo and scaffolded topics'
tests) is a ``read_committed`` consumer over every partition up to its high watermark, from the
log's start on a test's own topic, or from a run's start (``since=``) on a shared one; Avro values
decoded by confluent-kafka's own ``AvroDeserializer`` against the real registry, DLQ envelopes
parsed as plain JSON. The expected
records are built from the extract files with the standard library and pyarrow alone, never with
the product's readers, so a reader bug cannot hide itself.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kafka_ingest.batches import RunInfo
from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.pipeline.summary import summarize
from kafka_ingest.pipeline.wiring import build_job
from kafka_ingest.runtime.metrics import NullSink, StatsSink, TopicMetrics
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.topics import TopicRecord
from kafka_ingest.testing.topics import read_topic as read_topic  # the tests import it from here

DATE = "2026-01-01"
RUN = RunInfo(dag_id="it_ingest", run_id="it_run_1", task_id="publish", map_index=-1, try_number=1)

Row = dict[str, Any]


# --------------------------------------------------------------------------- running the product


@dataclass(frozen=True)
class Endpoints:
    """The endpoints a job needs; built from the session fixtures."""

    bootstrap: str
    registry_url: str
    checkpoint_topic: str

    def registry(self) -> SchemaRegistryClient:
        return SchemaRegistryClient({"url": self.registry_url, "timeout": DEFAULT_TIMEOUT_S})


def run_job(
    endpoints: Endpoints,
    spec: TopicSpec,
    files: Sequence[str],
    *,
    run: RunInfo = RUN,
    sink: StatsSink | None = None,
    auto_register: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Build the job as the operator does (``build_job``) and run it; the operator's XCom summary."""
    options = {"extract_date": DATE, "max_dlq_ratio": None, **settings}
    job_settings = JobSettings(**options)
    if not job_settings.validate_only:
        provision_topics(endpoints.bootstrap, spec, checkpoint_topic=endpoints.checkpoint_topic)
    job, schema_id = build_job(
        spec,
        job_settings,
        kafka_config={"bootstrap.servers": endpoints.bootstrap},
        registry_client=endpoints.registry(),
        checkpoint_topic=endpoints.checkpoint_topic,
        auto_register=auto_register,
        metrics=TopicMetrics(spec.topic, sink or NullSink()),
        run=run,
    )
    return summarize(
        job.run(files), topic=spec.topic, schema_id=schema_id, validate_only=job_settings.validate_only
    )


def with_topic(spec: TopicSpec, topic: str) -> TopicSpec:
    return replace(spec, topic=topic)


def task_context(run: RunInfo = RUN) -> dict[str, Any]:
    """The part of an Airflow task context the operator reads (``ti``), for ``execute`` calls."""
    ti = SimpleNamespace(
        dag_id=run.dag_id,
        run_id=run.run_id,
        task_id=run.task_id,
        map_index=run.map_index,
        try_number=run.try_number,
    )
    return {"ti": ti}


# --------------------------------------------------------------------------- reading topics back


#: One consumed record: ``kafka_ingest.testing.topics``'s, the reader scaffolded topics' tests use.
Record = TopicRecord


def topic_exists(bootstrap: str, topic: str) -> bool:
    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def decode_values(registry_url: str, topic: str, records: Iterable[Record]) -> list[dict[str, Any]]:
    """Values decoded by confluent-kafka's ``AvroDeserializer``, fetching the writer schema by id."""
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url, "timeout": DEFAULT_TIMEOUT_S}))
    context = SerializationContext(topic, MessageField.VALUE)
    return [deserializer(record.value, context) for record in records]


def by_source(records: Iterable[Record]) -> dict[tuple[str, int], Record]:
    """Records by (file name, row); fails on a row seen twice."""
    found: dict[tuple[str, int], Record] = {}
    for record in records:
        where = (record.file_name, record.row)
        assert where not in found, f"{record.topic}: row {where} appears twice"
        found[where] = record
    return found


# --------------------------------------------------------------------------- the source rows


def source_rows(path: str | Path) -> list[Row]:
    """A sample extract file's rows as written, read with the standard library and pyarrow."""
    path = Path(path)
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        return list(pq.read_table(path).to_pylist())
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.name.endswith(".gz") else data).decode("utf-8-sig")
    if name.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        for row in rows:
            if "items" in row:
                row["items"] = json.loads(row["items"])
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def utc_millis(text: str) -> datetime:
    """An ISO 8601 timestamp with an offset as the UTC instant Avro timestamp-millis carries."""
    instant = datetime.fromisoformat(text).astimezone(UTC)
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def expected_order(row: Row) -> dict[str, Any]:
    return {
        "order_number": row["order_number"],
        "user_id": row["user_id"],
        "status": row["status"],
        "items": [
            {
                "product_id": item["product_id"],
                "quantity": int(item["quantity"]),
                "unit_price": Decimal(str(item["unit_price"])),
            }
            for item in row["items"]
        ],
        "total_price": Decimal(row["total_price"]),
        "currency": row["currency"],
        "created_at": utc_millis(row["created_at"]),
        "coupon_code": row["coupon_code"] or None,
    }


def expected_payment(row: Row) -> dict[str, Any]:
    digits = re.sub(r"[^0-9]", "", row["card_number"] or "")
    return {
        "payment_number": row["payment_number"],
        "order_number": row["order_number"],
        "amount": Decimal(row["amount"]),
        "currency": row["currency"],
        "method": row["method"],
        "status": row["status"],
        "card_last4": digits[-4:] if digits else None,
        "paid_at": utc_millis(row["paid_at"]),
    }


EXPECTED_RECORD: dict[str, Callable[[Row], dict[str, Any]]] = {
    "orders": expected_order,
    "payments": expected_payment,
}


# --------------------------------------------------------------------------- hand-made extracts


def csv_line(values: Sequence[Any]) -> str:
    """One CSV record (CRLF), lists and dicts as JSON text in one field, as upstream writes them."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(
        [json.dumps(v) if isinstance(v, list | dict) else v for v in values]
    )
    return out.getvalue()


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    return csv_line(columns) + "".join(csv_line([row[c] for c in columns]) for row in rows)


def jsonl_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- StatsD


def statsd_admin(host: str, port: int, command: str) -> str:
    """One command on StatsD's admin port (``counters``, ``gauges``, ``timers``), its whole reply."""
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(f"{command}\n".encode())
        reply = b""
        while not reply.endswith(b"END\n\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.decode()


def statsd_counters(host: str, port: int, prefix: str) -> dict[str, int]:
    """The counters whose names start with ``prefix``, the prefix removed."""
    dump = statsd_admin(host, port, "counters")
    return {
        name[len(prefix) :]: int(value)
        for name, value in re.findall(r"'([^']+)': (\d+)", dump)
        if name.startswith(prefix)
    }
