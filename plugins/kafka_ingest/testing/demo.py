"""The end-to-end demo's two steps around ``airflow dags test`` (``scripts/demo`` runs them).

``land``: land one day of sample extracts (several formats, some bad rows) for both datasets,
unless the day is already there: an extract is landed once, so a second demo run republishes
nothing. ``show``: print what the DAG run of that day did (its ``report`` XCom) and a few of the
day's records, decoded with the Schema Registry, and DLQ envelopes, read as a consumer would.

Usage: ``python -m kafka_ingest.testing.demo land|show <extracts root> <date> [dag id ...]``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kafka_ingest.testing.samples import write_day
from kafka_ingest.testing.topics import TopicRecord, read_topic

#: dataset -> (rows, part file formats)
DEMO_DAYS = {
    "orders": (3_000, ("csv", "jsonl.gz", "parquet")),
    "payments": (2_000, ("csv.gz", "jsonl", "parquet")),
}
SHOWN = 3


def land(root: Path, date: str) -> None:
    for dataset, (rows, formats) in DEMO_DAYS.items():
        folder = root / dataset / f"dt={date}"
        if (folder / "_SUCCESS").exists():
            names = sorted(p.name for p in folder.iterdir() if p.name.startswith("part-"))
            print(f"  {dataset:<9} {folder} already landed ({', '.join(names)})")
            continue
        manifest = write_day(root, dataset, date, rows=rows, formats=formats, bad_ratio=0.03)
        print(
            f"  {dataset:<9} {folder}: {len(manifest.files)} part files ({', '.join(formats)}), "
            f"{manifest.rows} rows of which {len(manifest.rejected)} break a rule"
        )


def show(date: str, dag_ids: Sequence[str]) -> int:
    for noisy in ("httpx", "httpx2"):  # one line per Schema Registry request
        logging.getLogger(noisy).setLevel(logging.WARNING)
    failed = 0
    for dag_id in dag_ids:
        run, report = _last_run(dag_id, date)
        print(f"\n== {dag_id} {date}: run {run['state']} ({run['run_id']})")
        if report is None:
            print("   no report: the run did not get that far (see the log above)")
            failed += 1
            continue
        _print_report(report)
        if report["published"] == 0 and report["skipped"] and report["skipped"] == report["rows_read"]:
            print(
                "   nothing new: every file of this day was already published (a rerun is a no-op;"
                ' trigger with {"reprocess": true} to republish).'
            )
        _print_samples(report["topic"], date)
    return 1 if failed else 0


def _print_report(report: dict[str, Any]) -> None:
    print(
        f"   {report['files']} files, {report['rows_read']} rows read: {report['published']} published, "
        f"{report['dlq']} to DLQ, {report['skipped']} skipped (already published) -> {report['topic']}"
    )
    for f in report["per_file"]:
        print(
            f"     {Path(f['file']).name:<22} {f['status']:<20} read {f['rows_read']:>5}  "
            f"published {f['published']:>5}  dlq {f['dlq']:>3}  skipped {f['skipped']:>5}"
        )


def _print_samples(topic: str, date: str) -> None:
    bootstrap = os.environ["KAFKA_BOOTSTRAP"]
    day = f"/dt={date}/"
    records = _of_day(read_topic(bootstrap, topic), day)
    envelopes = _of_day(read_topic(bootstrap, f"{topic}.dlq"), day)
    print(f"   on {topic} (read_committed) for dt={date}: {len(records)} records; first {SHOWN}, decoded:")
    for record, value in zip(records, _decode(topic, records[:SHOWN]), strict=False):
        print(f"     key={record.key_text} {json.dumps(value, default=str, ensure_ascii=False)}")
    print(f"   on {topic}.dlq for dt={date}: {len(envelopes)} envelopes; first {SHOWN}:")
    for record in envelopes[:SHOWN]:
        envelope = json.loads(record.value)
        source = envelope["source"]
        original = json.dumps(envelope["original"], ensure_ascii=False)
        print(
            f"     {Path(source['file']).name}:{source['row']} stage={envelope['stage']} "
            f"rules={envelope['failed_rules']} original={_cut(original, 240)}"
        )


def _of_day(records: list[TopicRecord], day: str) -> list[TopicRecord]:
    """The records read from the day's files, in source (file, row) order."""
    of_day = [r for r in records if day in r.header("source.file")]
    return sorted(of_day, key=lambda r: (r.header("source.file"), int(r.header("source.row") or 0)))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _decode(topic: str, records: list[TopicRecord]) -> list[Any]:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S

    deserializer = AvroDeserializer(
        SchemaRegistryClient({"url": os.environ["SCHEMA_REGISTRY_URL"], "timeout": DEFAULT_TIMEOUT_S})
    )
    context = SerializationContext(topic, MessageField.VALUE)
    return [deserializer(record.value, context) for record in records]


def _last_run(dag_id: str, date: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The latest run of ``dag_id`` for ``date`` and its ``report`` XCom (None if it has none)."""
    from datetime import UTC, datetime

    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    logical_date = datetime.fromisoformat(date).replace(tzinfo=UTC)
    with create_session() as session:
        run = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date)
            .order_by(DagRun.id.desc())
        ).first()
        if run is None:
            raise SystemExit(f"demo: no run of {dag_id} for {date}")
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=dag_id, task_ids="report", key="return_value")
        ).first()
        report = XComModel.deserialize_value(row) if row is not None else None
        return {"run_id": run.run_id, "state": str(run.state)}, report


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("land", "show"):
        print(__doc__, file=sys.stderr)
        return 2
    command, root, date, *dag_ids = argv
    if command == "land":
        land(Path(root), date)
        return 0
    return show(date, dag_ids)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
