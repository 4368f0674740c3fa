"""What the ingestion integration tests share: running a job, reading topics back, the source rows.

Everything here reads the stack the way a downstream consumer would: a ``read_committed`` consumer
over every partition up to its end, Avro values decoded by confluent-kafka's own
``AvroDeserializer`` against the real registry, DLQ envelopes parsed as plain JSON. The expected
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
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kafka_ingest.dlq import RunInfo
from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S
from kafka_ingest.metrics import NullSink, StatsSink, TopicMetrics
from kafka_ingest.pipeline import JobSettings, summarize
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.wiring import build_job

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
    if not job_settings.dry_run:
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
    return summarize(job.run(files), topic=spec.topic, schema_id=schema_id, dry_run=job_settings.dry_run)


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


@dataclass
class Record:
    """One consumed record, with its headers as a dict (every header name is used once)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)
    raw_headers: list[tuple[str, bytes]] = field(default_factory=list)

    def header(self, name: str) -> str:
        return self.headers[name].decode()

    @property
    def row(self) -> int:
        return int(self.header("source.row"))

    @property
    def file_name(self) -> str:
        return Path(self.header("source.file")).name


def topic_exists(bootstrap: str, topic: str) -> bool:
    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def read_topic(
    bootstrap: str, topic: str, *, isolation: str = "read_committed", timeout_s: float = 30.0
) -> list[Record]:
    """Every record of every partition up to its end (the last stable offset for read_committed).

    A topic that does not exist reads as empty, and is not created by reading it.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=10).topics.get(topic)
    if metadata is None:
        return []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-reader-{uuid.uuid4().hex}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
        }
    )
    partitions = sorted(metadata.partitions)
    pending = set()
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high > low:
            pending.add(partition)
    records: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: partitions {sorted(pending)} not read to the end in time")
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                raise KafkaException(error)
            headers = message.headers() or []  # a consumed record's headers are a list of pairs
            pairs = headers.items() if isinstance(headers, dict) else headers
            raw_headers = [(name, _bytes(value)) for name, value in pairs]
            records.append(
                Record(
                    topic=topic,
                    partition=message.partition() or 0,
                    offset=message.offset() or 0,
                    key=message.key(),
                    value=message.value() or b"",
                    headers=dict(raw_headers),
                    raw_headers=raw_headers,
                )
            )
    finally:
        consumer.close()
    return records


def _bytes(value: str | bytes | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


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
