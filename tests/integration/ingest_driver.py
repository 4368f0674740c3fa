"""Runs one ingestion job in a child process that can crash on cue, for the crash-recovery tests.

    python ingest_driver.py '{"dataset": "orders", "topic": ..., "files": [...], ...}'

Keys: ``bootstrap``, ``registry_url``, ``checkpoint_topic``, ``dataset``, ``topic``, ``files``,
``date``, ``batch_size``, ``run_id``, and at most one crash point:

* ``kill_after_commits``: k -> SIGKILL right after the k-th data batch's transaction committed;
* ``kill_in_transaction``: k -> with k batches committed, produce batch k+1, flush it to the broker,
  then SIGKILL before its commit (the transaction stays open on the broker).

Without a crash point the child prints the run's summary as one JSON line and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import replace
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.batches import RunInfo
from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.pipeline.summary import summarize
from kafka_ingest.pipeline.wiring import build_job
from kafka_ingest.publish.records import BatchResult, BatchToPublish
from kafka_ingest.publish.transactions import TransactionalPublisher
from kafka_ingest.runtime.metrics import NullSink, TopicMetrics
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_crash_point(args: dict[str, Any]) -> None:
    publish, commit = TransactionalPublisher.publish, TransactionalPublisher._commit
    committed = 0

    if "kill_after_commits" in args:

        def publish_then_die(
            self: TransactionalPublisher, batch: BatchToPublish, *a: Any, **k: Any
        ) -> BatchResult:
            nonlocal committed
            result = publish(self, batch, *a, **k)
            if batch.records or batch.dlq:
                committed += 1
                if committed == args["kill_after_commits"]:
                    _die()
            return result

        TransactionalPublisher.publish = publish_then_die  # type: ignore[method-assign]

    if "kill_in_transaction" in args:

        def die_before_commit(self: TransactionalPublisher) -> None:
            nonlocal committed
            if committed == args["kill_in_transaction"]:
                self._producer.flush(30)  # the open transaction's records are on the broker
                _die()
            commit(self)
            committed += 1

        TransactionalPublisher._commit = die_before_commit  # type: ignore[method-assign]


def main(args: dict[str, Any]) -> int:
    install_crash_point(args)
    spec = replace({"orders": ORDERS, "payments": PAYMENTS}[args["dataset"]], topic=args["topic"])
    settings = JobSettings(extract_date=args["date"], batch_size=args["batch_size"], max_dlq_ratio=None)
    provision_topics(args["bootstrap"], spec, checkpoint_topic=args["checkpoint_topic"])
    job, schema_id = build_job(
        spec,
        settings,
        kafka_config={"bootstrap.servers": args["bootstrap"]},
        registry_client=SchemaRegistryClient({"url": args["registry_url"], "timeout": DEFAULT_TIMEOUT_S}),
        checkpoint_topic=args["checkpoint_topic"],
        auto_register=True,
        metrics=TopicMetrics(spec.topic, NullSink()),
        run=RunInfo("it_ingest", args["run_id"], "publish", -1, 1),
    )
    summary = summarize(job.run(args["files"]), topic=spec.topic, schema_id=schema_id, validate_only=False)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
