"""``python -m kafka_ingest replay``: the DLQ replay from a shell (docs/dlq-replay.md).

Connections come from Airflow's (``--kafka-conn``, ``--registry-conn``: environment variables or
the metadata database), or directly from ``--bootstrap`` and ``--registry-url``. Each run is a new
replay (its id is printed first); ``--replay-id`` resumes one that stopped. Exit status: 0 done
(also when nothing matched), 2 bad input (nothing published), 1 any other failure (retry it with
the printed id).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from kafka_ingest.errors import PermanentError
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.replay.audit import DEFAULT_REPLAYS_TOPIC


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "replay",
        help="replay a selection of a topic's DLQ, exactly once, with an audit record",
        description="Replay DLQ envelopes to their topic after fixing the cause (docs/dlq-replay.md).",
    )
    parser.add_argument("dataset", help="whose rules apply: orders or payments")
    parser.add_argument("--topic", help="the topic (default: the dataset's)")
    parser.add_argument("--from", dest="date_from", help="first source.date (YYYY-MM-DD)")
    parser.add_argument("--to", dest="date_to", help="last source.date (YYYY-MM-DD)")
    for flag, dest, what in (
        ("--stage", "stages", "a stage (read, validate, serialize, produce)"),
        ("--rule", "rules", "a failed rule's name"),
        ("--error-type", "error_types", "an error type (ExpectationFailed, ...)"),
        ("--file", "files", "a source file name or path"),
        ("--key", "keys", "a record key"),
    ):
        parser.add_argument(flag, dest=dest, action="append", default=[], help=f"{what}; repeat for more")
    parser.add_argument("--corrections", help="a CSV or JSON Lines corrections file (source: corrections)")
    parser.add_argument("--dry-run", action="store_true", help="report what would happen; publish nothing")
    parser.add_argument("--replay-id", help="resume this replay (default: a new id)")
    parser.add_argument(
        "--user", default=None, help="who runs the replay, for the audit record (default: $USER)"
    )
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the --kafka-conn connection)")
    parser.add_argument(
        "--registry-url", help="Schema Registry URL (default: the --registry-conn connection)"
    )
    parser.add_argument("--kafka-conn", default="kafka_default")
    parser.add_argument("--registry-conn", default="schema_registry_default")
    parser.add_argument("--checkpoint-topic", default=DEFAULT_CHECKPOINT_TOPIC)
    parser.add_argument("--replays-topic", default=DEFAULT_REPLAYS_TOPIC)
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from kafka_ingest.batches import RunInfo
    from kafka_ingest.operators.replay_dlq import SPECS
    from kafka_ingest.replay.job import ReplaySettings
    from kafka_ingest.replay.selection import Selection
    from kafka_ingest.replay.wiring import build_replay_job
    from kafka_ingest.runtime.metrics import NullSink, TopicMetrics

    spec = SPECS.get(args.dataset)
    if spec is None:
        print(f"Unknown dataset {args.dataset!r}: one of {', '.join(SPECS)}.", file=sys.stderr)
        return 2
    spec = replace(spec, topic=args.topic) if args.topic else spec
    user = args.user or getpass.getuser()
    replay_id = args.replay_id or f"cli/{user}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    print(f"Replay {replay_id} of {spec.dlq_topic}", file=sys.stderr)
    try:
        settings = ReplaySettings(
            replay_id=replay_id,
            selection=Selection.from_params(vars(args)),
            source="corrections" if args.corrections else "original",
            corrections_file=args.corrections,
            dry_run=args.dry_run,
            who=user,
            batch_size=args.batch_size,
        )
        job = build_replay_job(
            spec,
            settings,
            kafka_config=_kafka_config(args),
            conn_id=args.kafka_conn,
            registry_client=_registry(args),
            checkpoint_topic=args.checkpoint_topic,
            replays_topic=args.replays_topic,
            metrics=TopicMetrics(spec.topic, NullSink()),
            run=RunInfo(dag_id="cli", run_id=replay_id, task_id="replay"),
        )
        report = job.run().as_dict()
    except PermanentError as exc:
        print(f"Replay {replay_id}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for line in report["envelopes"]:
            print(f"{line['dlq']}\t{line.get('key') or ''}\t{line['outcome']}\t{line.get('reason', '')}")
        print(report["summary"])
    return 0


def _kafka_config(args: argparse.Namespace) -> dict[str, Any]:
    if args.bootstrap:
        return {"bootstrap.servers": args.bootstrap}
    from kafka_ingest.hooks.kafka import TransactionalProducerHook

    return TransactionalProducerHook(args.kafka_conn).client_config()


def _registry(args: argparse.Namespace) -> Any:
    if args.registry_url:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return SchemaRegistryClient({"url": args.registry_url})
    from kafka_ingest.hooks.schema_registry import SchemaRegistryHook

    return SchemaRegistryHook(args.registry_conn).get_client()
