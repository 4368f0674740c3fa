"""Reading a run's records back costs what the run wrote, not what the topic holds (issue #23).

``shopping.order.created``, the topic ``make demo`` reads, gets at least 2M records of another day
first, as on a stack used for a while. They are written once per stack: a later session finds
them there and adds none. Then ``make demo``'s show step (``kafka_ingest.testing.demo show``)
and a topic's test helper (``kafka_ingest.testing.topic_tests.run_day``) run on that topic and
on an empty one, and must be about as quick on both, reading only about what the run wrote.
The show step is timed in-process: the same code as the command, without the ~10 s it takes to
start Python and import Airflow, which would hide a difference rather than show one.

Nothing else in the suite reads this topic; every other test publishes to a topic of its own.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.encode.avro import AvroEncoder
from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.registry import load_schema, resolve_schema_id
from kafka_ingest.testing import demo
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.testing.topic_tests import run_day
from kafka_ingest.topics.orders import ORDERS

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]

TOPIC = ORDERS.topic  # the demo's topic, by its real name
HISTORY = 2_000_000
CONF = {"max_dlq_ratio": 0.5}  # small days: the share of bad rows is jumpy
#: "As fast as on an empty topic", with room for a machine shared with other test sessions.
SLACK_S = 5.0


@dataclass(frozen=True)
class History:
    records: int  # on the topic now
    written: int  # by this session (0: an earlier session did)
    seconds: float


def topic_size(bootstrap: str, topic: str) -> int:
    """Offsets on the topic (records plus transaction markers): what a scan from 0 would read."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-history-size"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        marks = [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in metadata.partitions
        ]
        return sum(high - low for low, high in marks)
    finally:
        consumer.close()


def fill(bootstrap: str, topic: str, values: list[bytes], count: int) -> float:
    """``count`` small pre-encoded records in a tight loop, batched and compressed; the seconds.

    Values only: no key and no headers, which cost ~0.5 µs each per record on the producer and
    change nothing about reading past them (with no ``source.file`` header they are of no extract
    day). Keyless records are spread over the partitions batch by batch (sticky partitioner).
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    produce, poll = producer.produce, producer.poll
    started = time.monotonic()
    for value in itertools.islice(itertools.cycle(values), count):
        while True:
            try:
                produce(topic, value)
                break
            except BufferError:
                poll(0.05)
    left = producer.flush(120)
    assert left == 0, f"{left} history records not delivered to {topic}"
    return time.monotonic() - started


def history_values(registry_url: str) -> list[bytes]:
    """A thousand orders of the history day, Avro-encoded under the topic's registered schema."""
    schema = load_schema(ORDERS.schema_path)
    client = SchemaRegistryClient({"url": registry_url})
    encoder = AvroEncoder(schema, resolve_schema_id(client, f"{TOPIC}-value", schema, auto_register=True))
    item = {"product_id": "P-0001", "quantity": 1, "unit_price": Decimal("9.99")}
    return [
        encoder.encode(
            {
                "order_number": f"OLD-{i:08d}",
                "user_id": f"user-{i}",
                "status": "CREATED",
                "items": [item],
                "total_price": Decimal("9.99"),
                "currency": "EUR",
                "created_at": datetime(2025, 12, 31, 12, tzinfo=UTC),
                "coupon_code": None,
            }
        )
        for i in range(1000)
    ]


@pytest.fixture(scope="module")
def history(kafka_bootstrap: str, schema_registry_url: str) -> History:
    """``shopping.order.created`` holding at least 2M records of another day."""
    provision_topics(kafka_bootstrap, ORDERS, checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC)  # make up's
    missing = HISTORY - topic_size(kafka_bootstrap, TOPIC)
    seconds = 0.0
    if missing > 0:
        seconds = fill(kafka_bootstrap, TOPIC, history_values(schema_registry_url), missing)
        print(f"history: {missing} records written to {TOPIC} in {seconds:.1f}s ({missing / seconds:,.0f}/s)")
    size = topic_size(kafka_bootstrap, TOPIC)
    assert size >= HISTORY
    return History(size, max(missing, 0), seconds)


def unused_day() -> str:
    """A day no earlier session published (checkpoints on the shared topic outlive the session)."""
    return (date(2100, 1, 1) + timedelta(days=random.randrange(36_500))).isoformat()


@pytest.fixture
def extracts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOW_VAR_EXTRACTS_ROOT", str(tmp_path))
    return tmp_path


@dataclass(frozen=True)
class Shown:
    """The show step after a run and after a rerun of one day, on an empty topic and on the full one."""

    day: str
    root: Path
    manifest: DayManifest
    #: topic -> (seconds, output) after the run, then after the rerun
    outputs: dict[str, list[tuple[float, str]]]
    dag_ids: dict[str, str]


@pytest.fixture(scope="module")
def shown(
    history: History, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shown]:
    from airflow.api.common.delete_dag import delete_dag

    day, root = unused_day(), tmp_path_factory.mktemp("extracts")
    manifest = write_day(root, "orders", day, rows=200, formats=("csv", "jsonl"))
    logical_date = datetime.fromisoformat(day).replace(tzinfo=UTC)
    outputs: dict[str, list[tuple[float, str]]] = {}
    dag_ids: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_VAR_EXTRACTS_ROOT", str(root))
        try:
            for topic in (f"{TOPIC}.it-empty-{uuid.uuid4().hex[:8]}", TOPIC):
                dag = build_ingest_dag(
                    OrdersToKafkaOperator, dag_id=f"it_history_{uuid.uuid4().hex[:8]}", topic=topic
                )
                # The brokers create no topic: the empty one is provisioned as `topics ensure` would.
                provision_topics(
                    kafka_bootstrap, replace(ORDERS, topic=topic), checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC
                )
                register(dag)
                dag_ids[topic] = dag.dag_id
                for _ in ("run", "rerun"):  # the rerun publishes nothing: the day is found back
                    assert dag.test(logical_date=logical_date, run_conf=CONF).state == "success"
                    outputs.setdefault(topic, []).append(show(root, day, dag.dag_id))
            yield Shown(day, root, manifest, outputs, dag_ids)
        finally:
            for dag_id in dag_ids.values():
                delete_dag(dag_id, keep_records_in_log=False)


def register(dag: Any) -> None:
    """Serialize the DAG into the metadata DB, as the dag-processor would; dag.test() needs it."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def show(root: Path, day: str, dag_id: str) -> tuple[float, str]:
    """The demo's show step for one DAG: its seconds and its output (it must succeed)."""
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = demo.main(["show", str(root), day, dag_id])
    seconds = time.monotonic() - started
    assert code == 0, out.getvalue()
    return seconds, out.getvalue()


def shown_counts(output: str, topic: str, day: str) -> tuple[int, int]:
    """The record and DLQ envelope counts the show step printed for the day."""
    records = re.search(rf"on {re.escape(topic)} for dt={day}: (\d+) records", output)
    envelopes = re.search(rf"on {re.escape(topic)}\.dlq for dt={day}: (\d+) envelopes", output)
    assert records, output
    assert envelopes, output
    return int(records[1]), int(envelopes[1])


def records_read(output: str) -> int:
    """How many records the show step read to find the day, as it says."""
    current = re.findall(r"to the end: (\d+) records on \S+, (\d+) on", output)
    earlier = re.findall(r"found by reading (\d+) records", output)
    assert current or earlier, output
    return sum(int(n) for pair in current for n in pair) + sum(int(n) for n in earlier)


def test_show_step_shows_the_day_after_a_run_and_a_rerun_on_either_topic(shown: Shown) -> None:
    expected = (len(shown.manifest.published), len(shown.manifest.rejected))
    for topic, ((_, run), (_, rerun)) in shown.outputs.items():
        assert shown_counts(run, topic, shown.day) == expected, run
        assert "nothing new" in rerun
        assert shown_counts(rerun, topic, shown.day) == expected, rerun


def test_show_step_reads_about_what_the_run_wrote_not_the_topics_history(shown: Shown) -> None:
    for topic, outputs in shown.outputs.items():
        for _, output in outputs:
            read = records_read(output)
            assert read <= 2 * shown.manifest.rows + 1_000, f"{topic}: read {read} records for 200 rows"


def test_show_step_is_as_quick_on_a_topic_of_millions_as_on_an_empty_one(
    shown: Shown, history: History
) -> None:
    (empty_run, empty_rerun), (full_run, full_rerun) = (
        [seconds for seconds, _ in shown.outputs[topic]] for topic in shown.outputs
    )
    print(
        f"show step: empty topic {empty_run:.2f}s (run) / {empty_rerun:.2f}s (rerun); {history.records:,} "
        f"records: {full_run:.2f}s / {full_rerun:.2f}s"
    )
    assert full_run <= 2 * empty_run + SLACK_S
    assert full_rerun <= 2 * empty_rerun + SLACK_S


def test_show_step_that_cannot_reach_the_registry_says_so_and_what_to_do(
    shown: Shown, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", closed)
    err = io.StringIO()

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = demo.main(["show", str(shown.root), shown.day, shown.dag_ids[TOPIC]])

    assert code == 1
    message = err.getvalue()
    assert f"decoding records of {TOPIC} with the Schema Registry at {closed} failed" in message
    assert "what to do: Check the stack with `scripts/stack status`" in message


def test_show_step_for_a_day_without_a_run_says_what_to_run() -> None:
    err = io.StringIO()

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = demo.main(["show", "/nowhere", "2099-01-01", "it_history_never_ran"])

    assert code == 1
    assert "no run of it_history_never_ran for 2099-01-01 in the metadata DB" in err.getvalue()
    assert "what to do: run it first (scripts/airflow dags test it_history_never_ran 2099-01-01)" in (
        err.getvalue()
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_topic_test_helper_reads_its_run_on_a_topic_of_millions(
    history: History, extracts_root: Path, kafka_bootstrap: str, schema_registry_url: str
) -> None:
    day = unused_day()
    manifest = write_day(extracts_root, "orders", day, rows=200, formats=("csv",))
    timings = {}
    for name, topic in (("empty", None), ("full", TOPIC)):
        started = time.monotonic()
        run = run_day(
            OrdersToKafkaOperator,
            extracts_root,
            day,
            kafka_bootstrap=kafka_bootstrap,
            schema_registry_url=schema_registry_url,
            conf=CONF,
            topic=topic,
        )
        timings[name] = time.monotonic() - started
        assert run.state == "success", run.task_states
        assert sorted(v["order_number"] for v in run.values) == sorted(manifest.published)
        assert set(run.dlq_rules("part-0001.csv")) == {row for _, row in manifest.rejected}

    print(
        f"run_day: empty topic {timings['empty']:.2f}s; {history.records:,} records: {timings['full']:.2f}s"
    )
    assert timings["full"] <= 2 * timings["empty"] + SLACK_S, timings
