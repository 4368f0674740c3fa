"""Builds the ``replay_dlq`` DAG: one manual run replays one selection of one topic's DLQ.

Every selection criterion is a Param, so an on-call engineer starts a replay from the trigger
form (docs/dlq-replay.md). The DAG renders templates as native objects, so list Params reach the
operator as lists. One replay at a time (``max_active_runs=1``): two replays of the same day
running together could each find a key not yet published.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param

from kafka_ingest.dag_factory import TOPIC_SUFFIX_ENV, auto_register_default
from kafka_ingest.operators.replay_dlq import SPECS, ReplayDlqOperator

STAGES = ["read", "validate", "serialize", "produce"]

DOC = """\
### Replay a topic's DLQ

Pick the **dataset** (its topic's current rules are applied; **topic** overrides the topic
name), narrow the **selection** (dates of `source.date`, stages, rule names, error types, files,
keys; empty means any) and the **source**: `original` re-runs the rules on each envelope's row as
read (after a rule was fixed), `corrections` takes rows from a CSV or JSON Lines file keyed by the
topic's key (after the data was fixed). Leave **dry run** ticked first: the `replay` task's log
and XCom list what would happen to each envelope. Untick it to publish.

Each row is published at most once for its day: keys already on the topic are skipped and
reported; rows that fail again go back to `<topic>.dlq` with `replay.of`. The run's XCom and one
record on `_kafka_ingest.replays` hold the counts. A retry or a cleared task resumes the same
replay (same run); a new run is a new replay. See docs/dlq-replay.md.
"""


def build_replay_dag(
    dag_id: str = "replay_dlq",
    *,
    kafka_config_id: str = "kafka_default",
    schema_registry_conn_id: str = "schema_registry_default",
    owner: str = "data-platform",
    auto_register: bool | None = None,
) -> DAG:
    """:param auto_register: as the ingestion DAGs (``$KAFKA_INGEST_AUTO_REGISTER``, false in production)."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        doc_md=DOC,
        tags=["kafka", "dlq", "replay"],
        render_template_as_native_obj=True,
        default_args={
            "owner": owner,
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
        },
        params=_params(),
    ) as dag:
        ReplayDlqOperator(
            task_id="replay",
            dataset="{{ params.dataset }}",
            topic="{{ params.topic }}",
            topic_suffix=os.environ.get(TOPIC_SUFFIX_ENV, ""),
            date_from="{{ params.date_from }}",
            date_to="{{ params.date_to }}",
            stages="{{ params.stages }}",
            rules="{{ params.rules }}",
            error_types="{{ params.error_types }}",
            files="{{ params.files }}",
            keys="{{ params['keys'] }}",  # params.keys would be the dict's method
            source="{{ params.source }}",
            corrections_file="{{ params.corrections_file }}",
            validate_only="{{ params.dry_run }}",
            replay_id="{{ params.replay_id }}",
            batch_size="{{ params.batch_size }}",
            kafka_config_id=kafka_config_id,
            schema_registry_conn_id=schema_registry_conn_id,
            auto_register=auto_register_default() if auto_register is None else auto_register,
        )
    return dag


def _params() -> dict[str, Param]:
    """The trigger form. Every Param that may stay blank allows ``null``: the UI marks a Param
    whose type does not include "null" as required, and refuses to Trigger while such a field is
    empty (a blank Topic, or a Keys box typed into and cleared), which would stop the documented
    "leave it blank for any" clicks."""

    def optional_text(title: str, description: str, **extra: Any) -> Param:
        return Param(None, type=["null", "string"], title=title, description=description, **extra)

    def text_list(title: str, description: str, **items: Any) -> Param:
        return Param(
            [],
            type=["null", "array"],
            items={"type": "string", **items},
            title=title,
            description=description,
        )

    return {
        "dataset": Param(
            sorted(SPECS)[0],
            type="string",
            enum=sorted(SPECS),
            title="Dataset",
            description="Whose rules apply.",
        ),
        "topic": optional_text("Topic", "Blank: the dataset's topic."),
        "date_from": optional_text("From date", "First source.date to replay (inclusive).", format="date"),
        "date_to": optional_text("To date", "Last source.date to replay (inclusive).", format="date"),
        "stages": text_list("Stages", "Only envelopes rejected at these stages (empty: any).", enum=STAGES),
        "rules": text_list("Rule names", "Only envelopes that failed any of these rules, one per line."),
        "error_types": text_list("Error types", "e.g. ExpectationFailed, RecordTooLarge (empty: any)."),
        "files": text_list("Files", "Source file names or paths (empty: any)."),
        "keys": text_list("Keys", "Only these record keys (empty: any)."),
        "source": Param(
            "original",
            type="string",
            enum=["original", "corrections"],
            title="Source",
            description="original: the envelope's row; corrections: the corrections file's row.",
        ),
        "corrections_file": optional_text(
            "Corrections file", "CSV or JSONL path or URL (source corrections)."
        ),
        "dry_run": Param(True, type="boolean", title="Dry run", description="Report only; publish nothing."),
        "replay_id": optional_text(
            "Replay id", "Blank: this run's. Give an earlier id to resume that replay."
        ),
        "batch_size": Param(
            1_000, type="integer", minimum=1, title="Batch size", description="Rows per transaction."
        ),
    }
