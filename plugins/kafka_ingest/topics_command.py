"""``python -m kafka_ingest topics ensure``: provision every spec's topics (and, with ``--acls``,
the ingest, consumer and registry principals' ACLs) on the cluster of a Kafka connection.

Specs are found the way Airflow finds the DAGs' operators: every public module of
``kafka_ingest.topics`` and of ``ingest_topics`` (the team's scaffolded topics), each
:class:`~kafka_ingest.specs.TopicSpec` defined at module level.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator
from typing import Any

from kafka_ingest.specs import TopicSpec

TOPIC_PACKAGES = ("kafka_ingest.topics", "ingest_topics")
#: The connection ``topics ensure`` uses when it exists (admin credentials on a secured cluster),
#: else ``kafka_default``.
ADMIN_CONN_ID = "kafka_admin"
DEFAULT_CONN_ID = "kafka_default"
TOPIC_SUFFIX_ENV = "KAFKA_INGEST_TOPIC_SUFFIX"
#: The registry's KafkaSQL topic prefix (scripts/stack-env.sh), for the registry principal's ACLs.
REGISTRY_PREFIX_ENV = "SCHEMA_REGISTRY_TOPIC_PREFIX"


def discover_specs(packages: tuple[str, ...] = TOPIC_PACKAGES) -> list[TopicSpec]:
    """Every TopicSpec defined at module level in the topic packages, in module order."""
    specs: dict[str, TopicSpec] = {}
    for module in _modules(packages):
        for value in vars(module).values():
            if isinstance(value, TopicSpec):
                specs.setdefault(value.topic, value)
    return list(specs.values())


def _modules(packages: tuple[str, ...]) -> Iterator[Any]:
    for name in packages:
        try:
            package = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                yield importlib.import_module(f"{name}.{info.name}")


def connection_config(conn_id: str | None) -> tuple[str, dict[str, Any]]:
    """The connection's librdkafka settings, through the same hook the operator uses (so the
    password field is mapped the same way)."""
    from kafka_ingest.hooks.kafka import TransactionalProducerHook

    if conn_id is None:
        conn_id = ADMIN_CONN_ID if f"AIRFLOW_CONN_{ADMIN_CONN_ID.upper()}" in os.environ else DEFAULT_CONN_ID
    return conn_id, TransactionalProducerHook(conn_id).client_config()


def add_command(commands: Any) -> None:
    parser = commands.add_parser("topics", help="provision the specs' topics (and ACLs)", description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True, metavar="action")
    ensure = actions.add_parser("ensure", help="create missing topics, report drift, fix what is safe")
    ensure.add_argument(
        "--conn", help=f"Kafka connection id (default: {ADMIN_CONN_ID} if set, else {DEFAULT_CONN_ID})"
    )
    ensure.add_argument("--bootstrap", help="bootstrap servers, instead of a connection (plaintext clusters)")
    ensure.add_argument("--checkpoint-topic", help="the checkpoint topic (default: the operators')")
    ensure.add_argument("--replays-topic", help="the DLQ replay's audit topic (default: the replay's)")
    ensure.add_argument(
        "--suffix",
        default=os.environ.get(TOPIC_SUFFIX_ENV, ""),
        help=f"appended to every data topic, as the DAG factory does with ${TOPIC_SUFFIX_ENV}",
    )
    ensure.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 on anything missing or drifted"
    )
    ensure.add_argument(
        "--acls",
        action="store_true",
        help="also write the ingest, consumer and registry principals' ACLs",
    )
    ensure.add_argument(
        "--registry-prefix",
        default=os.environ.get(REGISTRY_PREFIX_ENV, "_registry"),
        help=f"the registry's KafkaSQL topic prefix (default: ${REGISTRY_PREFIX_ENV} or _registry)",
    )
    ensure.add_argument("--timeout", type=float, default=60.0, help="seconds per cluster request")
    ensure.set_defaults(run=run_ensure)


def run_ensure(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    from kafka_ingest.provision.topics import ensure_topics, plan_topics
    from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
    from kafka_ingest.replay.audit import DEFAULT_REPLAYS_TOPIC

    if args.bootstrap:
        source, config = "--bootstrap", {"bootstrap.servers": args.bootstrap}
    else:
        source, config = connection_config(args.conn)
    plans = plan_topics(
        discover_specs(),
        args.checkpoint_topic or DEFAULT_CHECKPOINT_TOPIC,
        args.suffix,
        # Created by the replay itself before topics were provisioned (h20); now declared here.
        state_topics=[args.replays_topic or DEFAULT_REPLAYS_TOPIC],
    )
    admin = AdminClient(
        {k: v for k, v in config.items() if not k.startswith(("transactional.", "enable.idem"))}
    )
    outcomes = ensure_topics(admin, plans, fix=not args.check, timeout_s=args.timeout)
    print(f"topics ensure ({source}, {len(plans)} topics):")
    for outcome in outcomes:
        print(f"  {outcome.line()}")
    failed = any(o.status in ("missing", "drift") for o in outcomes) if args.check else False
    if args.acls:
        from kafka_ingest.provision.acls import ensure_acls

        found = ensure_acls(
            admin, plans, registry_prefix=args.registry_prefix, timeout_s=args.timeout, fix=not args.check
        )
        for line in found:
            print(f"  {line}")
    sys.stdout.flush()
    return 1 if failed else 0
