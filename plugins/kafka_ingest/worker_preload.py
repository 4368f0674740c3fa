"""Imports what a task process needs once, in the process Airflow forks the task processes from.

Airflow 3 runs every task instance in a process forked from a long-lived worker process (the
LocalExecutor's workers, a Celery pool process). The task process then parses the DAG file, which
imports pandas and pyarrow through the topic specs, and a ``publish`` task imports Great
Expectations, confluent-kafka and the pipeline: on a 2-core machine about 1 s of CPU for every
task and 3 s more for every ``publish`` task, paid again by each of the 60 task instances of a
10-day backfill (the backfill benchmark, docs/benchmarks.md). Imported once in the parent, the
forked task processes get them for free and share their pages copy-on-write.

How the stack loads it, by default (scripts/stack-env.sh, scripts/stack.d/airflow.sh,
docker-compose.yml; docs/deploy.md):

- LocalExecutor: ``[scheduler] mp_start_method = forkserver`` and
  ``[scheduler] mp_forkserver_preload = kafka_ingest.worker_preload``: the executor's worker
  processes are forked from a forkserver that imported this module. The scheduler itself stays
  lean (it never imports it).
- Celery: the workers (only they) run with ``[celery] celery_config_options =
  kafka_ingest.worker_preload.CELERY_CONFIG``, Airflow's default Celery configuration, read by the
  worker's main process before it forks its pool.

A module that fails to import is logged and left to the task to import (and fail) as before:
preloading never changes what a task does, only when its imports happen.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

#: What a task process imports beyond what the worker already has: the task runner, the DAG
#: files' imports (operators, sensors, specs with pandas and pyarrow) and a publish task's
#: (the pipeline with Great Expectations, confluent-kafka, the readers).
MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "kafka_ingest.dag_factory",
    "kafka_ingest.operators.datasets",
    "kafka_ingest.pipeline.wiring",
    "kafka_ingest.validate.validator",
    "great_expectations",
    "pyarrow.csv",
    "pyarrow.parquet",
    "confluent_kafka.schema_registry",
)


def __getattr__(name: str) -> Any:
    """``CELERY_CONFIG``: Airflow's default Celery configuration, unchanged. Naming it as
    ``celery_config_options`` is what makes a Celery worker import this module before it forks
    its pool (looked up lazily: the LocalExecutor's forkserver has no use for Celery)."""
    if name == "CELERY_CONFIG":
        from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

        return DEFAULT_CELERY_CONFIG
    raise AttributeError(name)


def preload(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import ``modules``; the names that failed (logged, not raised)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a task importing it later fails with the real error
            logging.getLogger(__name__).warning("could not preload %s", name, exc_info=True)
            failed.append(name)
    return failed


preload()
