"""Builds the daily ingestion DAG of a topic spec, so each DAG file is three lines.

The DAG: wait for the day's ``_SUCCESS`` → list its part files → one mapped ``publish`` task per
file (each its own transactional id and checkpoint, so a large day spreads over workers) → a
``report`` task that adds the mapped summaries up. Run-level knobs are DAG Params, shown in the
trigger and backfill forms.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from kafka_ingest.operators.extract_to_kafka import ExtractToKafkaOperator
from kafka_ingest.sensors.extract_day import ExtractDaySensor, day_folder

#: Where the sample extracts live; the ``extracts_root`` Variable points elsewhere in production.
SAMPLE_EXTRACTS_ROOT = str(Path(__file__).resolve().parents[2] / "samples" / "extracts")
EXTRACTS_ROOT = "{{ var.value.get('extracts_root', '" + SAMPLE_EXTRACTS_ROOT + "') }}"

DOC_TEMPLATE = """\
### Ingest `{dataset}` extracts into `{topic}`

Every day, once `<extracts_root>/{dataset}/dt=<ds>/_SUCCESS` exists, each part file of that day is
validated row by row and published to **`{topic}`** (Avro, Schema Registry subject
`{topic}-value`) in transactional batches. Rows that fail a rule go to **`{topic}.dlq`** with
the reason. A rerun or retry never publishes a row twice: each file resumes after its last
committed batch, and a day already published is skipped.

**On call**
- *`wait_for_extract` failed*: the upstream never wrote `_SUCCESS`; fix upstream, clear the task.
- *`publish` failed with "changed since rows ... were published"*: the file was replaced after a
  partial publish; restore it, or trigger with `reprocess` = true to republish it in full.
- *"Error budget exceeded"*: too many bad rows; read `{topic}.dlq`, fix the extract, clear.

**Backfill** (Trigger → Backfill in the UI, or
`scripts/airflow backfill create --dag-id {dag_id} --from-date 2026-01-01 --to-date 2026-01-03`).
Days already published publish nothing new unless `reprocess` is set.

**Params**: `reprocess`, `dry_run` (validate only, publish nothing), `batch_size`,
`max_dlq_ratio`. Variable `extracts_root` (default: the repo's sample extracts).
"""


def build_ingest_dag(
    operator_class: type[ExtractToKafkaOperator],
    *,
    dag_id: str | None = None,
    schedule: str | None = "@daily",
    start_date: datetime = datetime(2026, 1, 1),
    kafka_config_id: str = "kafka_default",
    schema_registry_conn_id: str = "schema_registry_default",
    sensor_timeout: timedelta = timedelta(hours=6),
    owner: str = "data-platform",
    tags: tuple[str, ...] = (),
) -> DAG:
    """The ingestion DAG of a dataset operator (a subclass that sets ``spec``)."""
    spec = operator_class.spec
    if spec is None:
        raise ValueError(f"{operator_class.__name__} sets no spec: it cannot make a DAG.")
    dag_id = dag_id or f"ingest_{spec.dataset}"
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=3,
        doc_md=DOC_TEMPLATE.format(dataset=spec.dataset, topic=spec.topic, dag_id=dag_id),
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
            extracts_root=EXTRACTS_ROOT,
            dataset=spec.dataset,
            timeout=sensor_timeout.total_seconds(),
            poke_interval=60,
        )
        files = list_day_files(EXTRACTS_ROOT, spec.dataset)
        publish = operator_class.partial(
            task_id="publish",
            day_files=files,
            kafka_config_id=kafka_config_id,
            schema_registry_conn_id=schema_registry_conn_id,
            reprocess="{{ params.reprocess }}",
            validate_only="{{ params.dry_run }}",
            batch_size="{{ params.batch_size }}",
            max_dlq_ratio="{{ params.max_dlq_ratio }}",
            outlets=[topic_asset(spec.topic, kafka_config_id)],
            map_index_template="{{ task.extract_path.rsplit('/', 1)[-1] }}",
        ).expand(extract_path=files)
        wait >> files
        report_day(publish.output, spec.topic)
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

    from kafka_ingest.sources import resolve_extract_files

    folder = day_folder(extracts_root, dataset, str(ds))
    files = [str(f) for f in resolve_extract_files(folder)]
    if not files:
        logging.getLogger(__name__).warning(
            "%s is complete (_SUCCESS) but holds no part files: nothing to publish.", folder
        )
    return files


@task(task_id="report", trigger_rule="none_failed")
def report_day(summaries: Any, topic: str) -> dict[str, Any]:
    """Adds up the mapped summaries: the day's totals in one XCom and one log line."""
    import logging

    rows = list(summaries or [])
    totals = {
        key: sum(int(s.get(key, 0)) for s in rows)
        for key in ("files", "rows_read", "published", "dlq", "skipped")
    }
    logging.getLogger(__name__).info(
        "%s: %d files, %d rows read, %d published, %d to DLQ, %d skipped.",
        topic,
        *totals.values(),
    )
    return {"topic": topic, **totals}


def _params() -> dict[str, Param]:
    return {
        "reprocess": Param(False, type="boolean", description="Republish files already published."),
        "dry_run": Param(False, type="boolean", description="Read and validate only; publish nothing."),
        "batch_size": Param(50_000, type="integer", minimum=1, description="Rows per transaction."),
        "max_dlq_ratio": Param(
            0.1, type="number", minimum=0, maximum=1, description="Fail above this share of bad rows."
        ),
    }
