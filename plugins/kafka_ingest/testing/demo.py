"""The end-to-end demo's two steps around ``airflow dags test`` (``scripts/demo`` runs them).

``land``: land one day of sample extracts (several formats, some bad rows) for both datasets,
unless the day is already there: an extract is landed once, so a second demo run republishes
nothing. ``show``: print what the DAG run of that day did (its ``report`` XCom) and a few of the
day's records, decoded with the Schema Registry, and DLQ envelopes, read as a consumer would.

``show`` reads what the run wrote, not what the topics hold (a used topic holds millions of
records): it seeks every partition to the run's start and reads to the high watermark. Files a
rerun skipped were published by an earlier run; their records are found from the files' last
checkpoints (:mod:`kafka_ingest.testing.locate`), read from when their publication began (the
checkpoints' ``started_at``) to the last checkpoint, and where that would mean reading too much,
the output says so.

On the secured stack (``KAFKA_SECURITY=sasl_ssl``) each read logs in as the principal a deployment
would use: the data and DLQ topics as ``kafka_consumer`` (read-only), the checkpoints as
``kafka_default`` (the ingest principal, which reads them in every run), the registry through
``schema_registry_default``. On the plaintext stack, which defines no ``kafka_consumer``, every
read uses the plain bootstrap address.

A step that fails prints what failed, on which topic, file or service, and what to do, and the
command exits non-zero.

Usage: ``python -m kafka_ingest.testing.demo land|show <extracts root> <date> [dag id ...]``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.testing.locate import CLOCK_MARGIN_S, began, last_checkpoints, newest, read_back
from kafka_ingest.testing.samples import write_day
from kafka_ingest.testing.topics import Client, TopicRecord, read_topic

#: dataset -> (rows, part file formats)
DEMO_DAYS = {
    "orders": (3_000, ("csv", "jsonl.gz", "parquet")),
    "payments": (2_000, ("csv.gz", "jsonl", "parquet")),
}
SHOWN = 3
#: The secured stack's read-only principal (scripts/stack-env.sh; docs/security.md), and the
#: operators' connection (the ingest principal, allowed to read the checkpoint topic).
CONSUMER_CONN_ID = "kafka_consumer"
INGEST_CONN_ID = "kafka_default"
CHECK_STACK = (
    "Check the stack with `scripts/stack status` (logs in .stack/logs/), or start it with `make up`."
)


class DemoError(Exception):
    """A step of the demo failed; the message says what, where, and what to do."""


@contextmanager
def step(what: str, todo: str) -> Iterator[None]:
    """Turns any failure inside into a :class:`DemoError` naming the step and the remedy."""
    try:
        yield
    except (DemoError, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise DemoError(f"{what} failed: {type(exc).__name__}: {exc}\n  what to do: {todo}") from exc


def land(root: Path, date: str) -> None:
    for dataset, (rows, formats) in DEMO_DAYS.items():
        folder = root / dataset / f"dt={date}"
        if (folder / "_SUCCESS").exists():
            names = sorted(p.name for p in folder.iterdir() if p.name.startswith("part-"))
            print(f"  {dataset:<9} {folder} already landed ({', '.join(names)})")
            continue
        with step(
            f"landing the {dataset} sample extract in {folder}",
            "make the folder writable, or set AIRFLOW_VAR_EXTRACTS_ROOT to a writable folder.",
        ):
            manifest = write_day(root, dataset, date, rows=rows, formats=formats, bad_ratio=0.03)
        print(
            f"  {dataset:<9} {folder}: {len(manifest.files)} part files ({', '.join(formats)}), "
            f"{manifest.rows} rows of which {len(manifest.rejected)} break a rule"
        )


@dataclass(frozen=True)
class Run:
    """The latest run of a DAG for the day: its id, state, start, totals and per-file summaries."""

    run_id: str
    state: str
    #: when its first ``publish`` try began (the run's own start date is the logical date under
    #: ``airflow dags test``, and a scheduled run may wait long before publishing)
    start_date: datetime | None
    report: dict[str, Any] | None
    #: file path -> its checkpoint key, from the mapped ``publish`` tasks' summaries
    checkpoints: dict[str, str]


def show(date: str, dag_ids: Sequence[str]) -> int:
    _quiet()
    failed = 0
    for dag_id in dag_ids:
        with step(
            f"reading the last run of {dag_id} for {date} from Airflow's metadata DB "
            f"({os.environ.get('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', 'airflow.cfg')})",
            CHECK_STACK,
        ):
            run = _last_run(dag_id, date)
        print(f"\n== {dag_id} {date}: run {run.state} ({run.run_id})")
        report = run.report
        if report is None:
            print(f"   no report: the run did not get that far (its log: .stack/logs/demo-{dag_id}.log)")
            failed += 1
            continue
        _print_report(report)
        if report["published"] == 0 and report["skipped"] and report["skipped"] == report["rows_read"]:
            print(
                "   nothing new: every file of this day was already published (a rerun is a no-op;"
                ' trigger with {"reprocess": true} to republish).'
            )
        _print_samples(run, report, date)
    return 1 if failed else 0


def _quiet() -> None:
    """Keeps stderr for failures: no per-request log lines, no deprecation chatter."""
    for noisy in ("httpx", "httpx2"):  # one line per Schema Registry request
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


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


def _print_samples(run: Run, report: dict[str, Any], date: str) -> None:
    topic = report["topic"]
    day = f"/dt={date}/"
    wrote = [f["file"] for f in report["per_file"] if f["published"] or f["dlq"]]
    earlier = [f["file"] for f in report["per_file"] if f["status"] == "already published"]
    records: list[TopicRecord] = []
    envelopes: list[TopicRecord] = []
    if wrote or not earlier:
        found, dlq = _written_by(run, topic, day)
        records += found
        envelopes += dlq
    if earlier:
        found, dlq = _published_before(run, topic, earlier)
        records += found
        envelopes += dlq
    print(f"   on {topic} for dt={date}: {len(records)} records; first {SHOWN}, decoded:")
    with step(
        f"decoding records of {topic} with the Schema Registry at {os.environ['SCHEMA_REGISTRY_URL']}",
        CHECK_STACK,
    ):
        decoded = _decode(topic, records[:SHOWN])
    for record, value in zip(records, decoded, strict=False):
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


def _written_by(run: Run, topic: str, day: str) -> tuple[list[TopicRecord], list[TopicRecord]]:
    """The day's records this run wrote: each partition read from the run's start to its end."""
    if run.start_date is None:
        raise DemoError(
            f"run {run.run_id} has no publish task that started, yet its report counts records.\n"
            "  what to do: look at the run in Airflow; rerun the day (make demo) once it is fixed."
        )
    since = run.start_date.timestamp() - CLOCK_MARGIN_S
    started = time.monotonic()
    read = [_read(name, since) for name in (topic, f"{topic}.dlq")]
    print(
        f"   read back (read_committed) from the run's start ({_when(since * 1000)}) to the end: "
        f"{len(read[0])} records on {topic}, {len(read[1])} on {topic}.dlq "
        f"in {time.monotonic() - started:.1f}s"
    )
    return _of_day(read[0], day), _of_day(read[1], day)


def _read(topic: str, since: float) -> list[TopicRecord]:
    with step(
        f"reading {topic} from {_when(since * 1000)} to its end",
        CHECK_STACK + " A read that times out behind an open transaction can be retried.",
    ):
        return read_topic(_kafka(CONSUMER_CONN_ID), topic, since=since)


def _published_before(run: Run, topic: str, files: list[str]) -> tuple[list[TopicRecord], list[TopicRecord]]:
    """The records of ``files``, which an earlier run published, found from their checkpoints."""
    keys = {run.checkpoints[f]: f for f in files if f in run.checkpoints}
    with step(f"reading the day's checkpoints on {DEFAULT_CHECKPOINT_TOPIC}", CHECK_STACK):
        checkpoints = last_checkpoints(_kafka(INGEST_CONN_ID), DEFAULT_CHECKPOINT_TOPIC, keys)
    if not checkpoints:
        print(f"   the files' checkpoints are not on {DEFAULT_CHECKPOINT_TOPIC}: the earlier run is unknown")
        return [], []
    before = newest(checkpoints)
    counts = [c.checkpoint for c in checkpoints.values()]
    after = began(checkpoints)
    found = []
    for name, expected in (
        (topic, sum(c.published for c in counts)),
        (f"{topic}.dlq", sum(c.dlq for c in counts)),
    ):
        started = time.monotonic()
        with step(f"searching {name} back from {_when(before)} for the day's records", CHECK_STACK):
            located = read_back(
                _kafka(CONSUMER_CONN_ID),
                name,
                files=keys.values(),
                before_ms=before,
                after_ms=after,
                expected=expected,
            )
        print(
            f"   {name}: {len(located.records)} of the {expected} rows the checkpoints count, published by "
            f"{sorted({c.run_id for c in counts})} before {_when(before)}; found by reading "
            f"{located.scanned} records back to {_when(located.reached)} in {time.monotonic() - started:.1f}s"
        )
        if not located.complete:
            print(
                f"   the others are older than that, or gone (retention); not read further, to keep this "
                f"quick. To see the day in full, rerun with reprocess (airflow dags test <dag> <date> "
                f"-c '{{\"reprocess\": true}}'), or read {name} with a consumer of your own."
            )
        found.append(located.records)
    return found[0], found[1]


def _of_day(records: list[TopicRecord], day: str) -> list[TopicRecord]:
    """The records read from the day's files, in source (file, row) order."""
    of_day = [r for r in records if day in r.header("source.file")]
    return sorted(of_day, key=lambda r: (r.header("source.file"), int(r.header("source.row") or 0)))


def _when(millis: float) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if millis else "-"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _kafka(conn_id: str) -> Client:
    """The client settings of the stack's connection ``conn_id`` (its login on the secured stack),
    through the operator's own hook; the plain bootstrap address where the stack does not define it."""
    from kafka_ingest.hooks.kafka import TransactionalProducerHook

    if f"AIRFLOW_CONN_{conn_id.upper()}" not in os.environ:
        return os.environ["KAFKA_BOOTSTRAP"]
    return TransactionalProducerHook(conn_id).client_config()


def _decode(topic: str, records: list[TopicRecord]) -> list[Any]:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from kafka_ingest.hooks.schema_registry import SchemaRegistryHook

    # The registry at $SCHEMA_REGISTRY_URL, with the login of the stack's registry connection
    # (basic auth on the secured stack; none on the plaintext one).
    config = {**SchemaRegistryHook().client_config(), "url": os.environ["SCHEMA_REGISTRY_URL"]}
    deserializer = AvroDeserializer(SchemaRegistryClient(config))
    context = SerializationContext(topic, MessageField.VALUE)
    return [deserializer(record.value, context) for record in records]


def _last_run(dag_id: str, date: str) -> Run:
    """The latest run of ``dag_id`` for ``date``, its ``report`` XCom (None if it has none) and its
    files' checkpoint keys."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    logical_date = datetime.fromisoformat(date).replace(tzinfo=UTC)
    with create_session() as session:
        run = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date)
            .order_by(DagRun.id.desc())
        ).first()
        if run is None:
            raise DemoError(
                f"no run of {dag_id} for {date} in the metadata DB.\n"
                f"  what to do: run it first (scripts/airflow dags test {dag_id} {date}), or run `make demo`."
            )

        def xcoms(task_id: str) -> list[Any]:
            rows = XComModel.get_many(run_id=run.run_id, dag_ids=dag_id, task_ids=task_id, key="return_value")
            return [XComModel.deserialize_value(row) for row in session.scalars(rows)]

        reports = xcoms("report")
        checkpoints = {f["file"]: f["checkpoint"] for s in xcoms("publish") for f in s.get("per_file", [])}
        starts = [
            session.scalar(
                select(func.min(table.start_date)).where(
                    table.dag_id == dag_id, table.run_id == run.run_id, table.task_id == "publish"
                )
            )
            for table in (TaskInstance, TaskInstanceHistory)  # the tries before the last are in history
        ]
        start = min((s for s in starts if s is not None), default=None)
        return Run(run.run_id, str(run.state), start, reports[0] if reports else None, checkpoints)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("land", "show"):
        print(__doc__, file=sys.stderr)
        return 2
    command, root, date, *dag_ids = argv
    action: Callable[[], int | None] = (
        (lambda: land(Path(root), date)) if command == "land" else (lambda: show(date, dag_ids))
    )
    try:
        return action() or 0
    except DemoError as exc:
        print(f"demo: {command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
