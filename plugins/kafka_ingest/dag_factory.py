"""Builds the daily ingestion DAG of a topic spec, so each DAG file is three lines.

The DAG: wait for the day's ``_SUCCESS`` → list its part files → one mapped ``publish`` task per
file (each its own transactional id and checkpoint, so a large day spreads over workers) → a
``report`` task that adds the mapped summaries up, writes the run report (linked from the task)
and marks the topic's Asset updated. Run-level
knobs are DAG Params, shown in the trigger and backfill forms.

``KAFKA_INGEST_TOPIC_SUFFIX`` (read when the DAG file is parsed) appends a suffix to every topic
the factory builds, so tests and staging can run the production DAG files against their own
topics; unset in production.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, task
from airflow.sdk.bases.timetable import BaseTimetable

from kafka_ingest.operators.extract_to_kafka import ExtractToKafkaOperator
from kafka_ingest.operators.report import DayReportOperator
from kafka_ingest.run_report import SUMMARY_FIELDS, day_report
from kafka_ingest.sensors.extract_day import ExtractDaySensor, day_folder

__all__ = ["SUMMARY_FIELDS", "build_ingest_dag", "day_report", "list_day_files", "topic_asset"]

#: A run covers one UTC day and starts when the day is over: its logical date (``ds``, the ``dt=``
#: folder) is the day's start. A plain "@daily" is a CronTriggerTimetable in Airflow 3, whose run at
#: midnight has that midnight's date, so it would wait for a day that has only just begun.
DAILY = CronDataIntervalTimetable("@daily", timezone="UTC")
#: Where the sample extracts live; the ``extracts_root`` Variable points elsewhere in production.
SAMPLE_EXTRACTS_ROOT = str(Path(__file__).resolve().parents[2] / "samples" / "extracts")
EXTRACTS_ROOT = "{{ var.value.get('extracts_root', '" + SAMPLE_EXTRACTS_ROOT + "') }}"
TOPIC_SUFFIX_ENV = "KAFKA_INGEST_TOPIC_SUFFIX"

DOC_TEMPLATE = """\
### Ingest `{dataset}` extracts into `{topic}`

The run for day `<ds>` starts when that UTC day is over. Once
`<extracts_root>/{dataset}/dt=<ds>/_SUCCESS` exists, each part file of that day is
validated row by row and published to **`{topic}`** (Avro, Schema Registry subject
`{topic}-value`) in transactional batches, one mapped `publish` task per file. Rows that fail a
rule go to **`{topic}.dlq`** with the reason. `report` adds the files up (its XCom: files, rows
read, published, DLQ, skipped; its "Run report" link: per-file counts and the DLQ by stage and
rule) and updates the Asset `{topic}` (not on a dry run). A rerun, retry or backfill never
publishes a row twice: each file resumes after its last committed batch, and a file already
published is skipped (counted as `skipped`).

**On call**
- *`wait_for_extract` failed ("never completed: no _SUCCESS marker at ...")*: the upstream did not
  finish the day within {timeout}; fix the upstream export, then clear the task to wait again.
- *`list_part_files` warned "holds no part files"*: the day is complete but empty; the run
  succeeds with 0 published. Check with the upstream if that is unexpected.
- *`publish` failed with "changed since rows ... were published"*: a file was replaced after it
  was (partly) published; restore it, or trigger the day with `reprocess` = true to republish it
  in full (consumers then see its rows twice, with the same keys).
- *"Error budget exceeded"*: too many bad rows in the day; read `{topic}.dlq`, fix the extract,
  clear. Raise `max_dlq_ratio` only if the bad rows are expected.
- Anything else (broker, registry unreachable) is retried with exponential backoff; clearing the
  task is always safe.

**Backfill**: Trigger → Backfill in the UI (From/To, Reprocess Behavior, Max Active Runs), or
`scripts/airflow backfill create --dag-id {dag_id} --from-date 2026-01-01 --to-date 2026-01-03`,
or `POST /api/v2/backfills`. Days already published publish nothing new, even with "All Runs",
unless the run's configuration sets `"reprocess": true` (in the UI: Advanced Options →
Configuration JSON, with "Override parameters on existing runs" ticked). See `docs/backfill.md`.

**Params**: `reprocess` (republish files already published), `dry_run` (read and validate only;
publish nothing, report what would be), `batch_size` (rows per transaction), `max_dlq_ratio`
(fail above this share of bad rows). Variable `extracts_root`: the extracts root, a folder or
fsspec URL (default: the repo's sample extracts). Connections: `{kafka_config_id}` (Kafka),
`{schema_registry_conn_id}` (Schema Registry).
"""


#: Environment switch for schema auto-registration (``false`` in production).
AUTO_REGISTER_ENV = "KAFKA_INGEST_AUTO_REGISTER"


def build_ingest_dag(
    operator_class: type[ExtractToKafkaOperator],
    *,
    dag_id: str | None = None,
    topic: str | None = None,
    schedule: str | BaseTimetable | None = DAILY,
    start_date: datetime = datetime(2026, 1, 1),
    end_date: datetime | None = None,
    max_active_runs: int = 3,
    kafka_config_id: str = "kafka_default",
    schema_registry_conn_id: str = "schema_registry_default",
    sensor_timeout: timedelta = timedelta(hours=6),
    poke_interval: timedelta = timedelta(minutes=2),
    owner: str = "data-platform",
    tags: tuple[str, ...] = (),
    auto_register: bool | None = None,
    extracts_root: str = EXTRACTS_ROOT,
) -> DAG:
    """The ingestion DAG of a dataset operator (a subclass that sets ``spec``).

    :param topic: the topic to publish to (default: the spec's), plus ``$KAFKA_INGEST_TOPIC_SUFFIX``.
    :param kafka_config_id: the Kafka connection of this DAG (each DAG may use its own).
    :param end_date: the last day the schedule makes runs for (none by default). A DAG over a
        fixed set of past days (the backfill benchmark's) sets it, so unpausing it for a backfill
        does not also start a scheduled run of today, which has no extract.
    :param sensor_timeout: how long to wait for ``_SUCCESS`` before failing the run.
    :param extracts_root: where the ``<dataset>/dt=<ds>/`` folders are (templated; default: the
        ``extracts_root`` Variable): a DAG of its own root, e.g. a test's DAG on a shared Airflow.
    :param auto_register: register the value schema if needed (dev). Default: ``$KAFKA_INGEST_AUTO_REGISTER``
        (``true`` unless set); set it to ``false`` in production, where the registered schema is
        required and a schema change goes through the release process.
    """
    spec = operator_class.spec
    if spec is None:
        raise ValueError(f"{operator_class.__name__} sets no spec: it cannot make a DAG.")
    dag_id = dag_id or f"ingest_{spec.dataset}"
    topic = (topic or spec.topic) + os.environ.get(TOPIC_SUFFIX_ENV, "")
    doc = DOC_TEMPLATE.format(
        dataset=spec.dataset,
        topic=topic,
        dag_id=dag_id,
        timeout=sensor_timeout,
        kafka_config_id=kafka_config_id,
        schema_registry_conn_id=schema_registry_conn_id,
    )
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        end_date=end_date,
        catchup=False,
        max_active_runs=max_active_runs,
        doc_md=doc,
        tags=["kafka", "ingestion", spec.dataset, *tags],
        default_args={
            "owner": owner,
            "retries": 3,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
        },
        params=_params(),
    ) as dag:
        wait = ExtractDaySensor(
            task_id="wait_for_extract",
            extracts_root=extracts_root,
            dataset=spec.dataset,
            timeout=sensor_timeout.total_seconds(),
            poke_interval=poke_interval.total_seconds(),
        )
        files = list_day_files(extracts_root, spec.dataset)
        publish = operator_class.partial(
            task_id="publish",
            topic=topic,
            day_files=files,
            kafka_config_id=kafka_config_id,
            schema_registry_conn_id=schema_registry_conn_id,
            auto_register=auto_register_default() if auto_register is None else auto_register,
            reprocess="{{ params.reprocess }}",
            validate_only="{{ params.dry_run }}",
            batch_size="{{ params.batch_size }}",
            max_dlq_ratio="{{ params.max_dlq_ratio }}",
            map_index_template="{{ task.extract_path.rsplit('/', 1)[-1] }}",
        ).expand(extract_path=files)
        wait >> files
        DayReportOperator(
            task_id="report",
            summaries=publish.output,
            topic=topic,
            max_dlq_ratio="{{ params.max_dlq_ratio }}",
            trigger_rule="none_failed",
            outlets=[topic_asset(topic, kafka_config_id)],
        )
    return dag


def topic_asset(topic: str, kafka_config_id: str) -> Asset:
    """The topic as an Asset; downstream DAGs can schedule on it.

    The kafka:// scheme wants a server; the connection id stands for it, so the Asset does not
    change when brokers do.
    """
    cluster = os.environ.get("KAFKA_INGEST_ASSET_CLUSTER", kafka_config_id.replace("_", "-"))
    return Asset(name=topic, uri=f"kafka://{cluster}/{topic}")


@task(task_id="list_part_files")
def list_day_files(extracts_root: str, dataset: str, ds: str | None = None) -> list[str]:
    """The day's part files, by name; a complete day with none is fine but worth a warning."""
    import logging

    from kafka_ingest.read import resolve_extract_files

    folder = day_folder(extracts_root, dataset, str(ds))
    files = [str(f) for f in resolve_extract_files(folder)]
    if not files:
        logging.getLogger(__name__).warning(
            "%s is complete (_SUCCESS) but holds no part files: nothing to publish.", folder
        )
    return files


def _params() -> dict[str, Param]:
    return {
        "reprocess": Param(
            False,
            type="boolean",
            title="Reprocess",
            description="Republish files already published (consumers see their rows again).",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Read and validate only; publish nothing and report what would be published.",
        ),
        "batch_size": Param(
            50_000, type="integer", minimum=1, title="Batch size", description="Rows per transaction."
        ),
        "max_dlq_ratio": Param(
            0.1,
            type="number",
            minimum=0,
            maximum=1,
            title="Max DLQ ratio",
            description="Fail a file once more than this share of its rows goes to the DLQ.",
        ),
    }


def auto_register_default() -> bool:
    """Whether the DAGs register a new schema version themselves (KAFKA_INGEST_AUTO_REGISTER, default on)."""
    return os.environ.get(AUTO_REGISTER_ENV, "true").strip().lower() not in ("false", "0", "no")
