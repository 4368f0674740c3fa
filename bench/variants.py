"""One measurement per process: ``python -m bench.variants '<json task>'`` prints one JSON result.

Each variant imports its libraries and prepares its inputs *before* the clock starts, then times
only the work a run does (building the job or operator, reading, validating, encoding, producing,
committing). The process's peak RSS (``ru_maxrss``, children included) is reported with it, which is
why every measurement gets a fresh process. The parent (``bench/run.py``) counts what reached the
topics afterwards and voids a measurement whose count is wrong.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REGISTRY = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
CHECKPOINT_TOPIC = "_kafka_ingest.bench.checkpoints"
#: The pipeline's librdkafka settings (bench/cluster.py passes a secured cluster's), and the
#: settings that provision its topics and ACLs there (an admin's); plain bootstrap otherwise.
KAFKA_CONFIG: dict[str, Any] = json.loads(os.environ.get("BENCH_KAFKA_CONFIG") or "{}") or {
    "bootstrap.servers": BOOTSTRAP
}
ADMIN_CONFIG: dict[str, Any] = json.loads(os.environ.get("BENCH_ADMIN_CONFIG") or "{}") or KAFKA_CONFIG
DATE = "2026-01-01"
log = logging.getLogger("bench")


def main() -> None:
    task = json.loads(sys.argv[1])
    logging.basicConfig(
        level=logging.INFO,
        filename=task["log"],
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    variant = VARIANTS[task["variant"]]
    result = variant(task)
    result["rss_mb"] = round(peak_rss_kib() / 1024, 1)
    result["cpu_seconds"] = round(CPU.get("seconds", 0.0), 2)
    print(json.dumps(result), flush=True)


def peak_rss_kib() -> int:
    """This process's peak RSS since it started (VmHWM), plus any child's (``ru_maxrss``).

    ``ru_maxrss`` of the process itself would do, except that Linux carries the pre-exec image's
    peak over an exec; VmHWM is the running program's own high-water mark.
    """
    status = Path("/proc/self/status").read_text()
    own = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def _topic(task: dict[str, Any]) -> str:
    return f"bench.{task['variant']}.{task['rows']}.{task['format'].split('.')[0]}.{uuid.uuid4().hex[:8]}"


#: CPU seconds of the timed region (all threads of this process): steadier than wall time on a
#: shared machine, so optimisations are judged on it too.
CPU: dict[str, float] = {}


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    if os.environ.get("BENCH_HANDSHAKE"):  # bench/run.py starts the clock once it has checked the last run
        print("ready", flush=True)
        sys.stdin.readline()
    started, cpu = time.perf_counter(), time.process_time()
    outcome = work()
    CPU["seconds"] = time.process_time() - cpu
    return time.perf_counter() - started, outcome


# -- the product -------------------------------------------------------------------------------


def pipeline(task: dict[str, Any]) -> dict[str, Any]:
    """IngestionJob as the operator builds it: registry check, real transactional producer, DLQ,
    checkpoints, the duplicate pre-scan; GX imported beforehand (as a warm worker would have it)."""
    import great_expectations  # noqa: F401  (import cost is not the pipeline's throughput)
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from kafka_ingest.batches import RunInfo
    from kafka_ingest.pipeline.settings import JobSettings
    from kafka_ingest.pipeline.summary import summarize
    from kafka_ingest.pipeline.wiring import build_job
    from kafka_ingest.runtime.allocation import tuned_for_ingestion
    from kafka_ingest.runtime.metrics import NullSink, TopicMetrics
    from kafka_ingest.testing.provision import provision_topics
    from kafka_ingest.topics.orders import ORDERS

    spec = replace(ORDERS, topic=_topic(task))
    provision_topics(ADMIN_CONFIG, spec, checkpoint_topic=CHECKPOINT_TOPIC)
    if ADMIN_CONFIG is not KAFKA_CONFIG:
        from confluent_kafka.admin import AdminClient

        from kafka_ingest.provision.acls import ensure_acls
        from kafka_ingest.provision.topics import plan_topics

        ensure_acls(AdminClient(ADMIN_CONFIG), plan_topics([spec], CHECKPOINT_TOPIC))
    settings = JobSettings(
        extract_date=DATE, **({"batch_size": task["batch_size"]} if task.get("batch_size") else {})
    )

    def run() -> dict[str, Any]:
        with tuned_for_ingestion():  # as the operator does, from before the job is built
            job, schema_id = build_job(
                spec,
                settings,
                kafka_config=KAFKA_CONFIG,
                registry_client=SchemaRegistryClient({"url": REGISTRY, "timeout": DEFAULT_TIMEOUT_S}),
                checkpoint_topic=CHECKPOINT_TOPIC,
                auto_register=True,
                metrics=TopicMetrics(spec.topic, NullSink()),
                run=RunInfo("bench", f"bench-{uuid.uuid4().hex[:8]}", "publish", -1, 1),
            )
            return summarize(
                job.run([task["file"]]), topic=spec.topic, schema_id=schema_id, validate_only=False
            )

    seconds, summary = _timed(run)
    return {
        "seconds": seconds,
        "topic": spec.topic,
        "dlq_topic": spec.dlq_topic,
        "published": summary["published"],
        "dlq": summary["dlq"],
        "batch_size": settings.batch_size,
    }


def pipeline_days(task: dict[str, Any]) -> dict[str, Any]:
    """The backfill benchmark's baseline: the days of ``task["days"]`` one after the other through
    ``build_job`` + ``IngestionJob.run`` (a job per day over its part files, as one ``publish``
    task does per file), in one warm process: what a backfill costs without a scheduler."""
    import great_expectations  # noqa: F401
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from kafka_ingest.batches import RunInfo
    from kafka_ingest.pipeline.settings import JobSettings
    from kafka_ingest.pipeline.wiring import build_job
    from kafka_ingest.runtime.allocation import tuned_for_ingestion
    from kafka_ingest.runtime.metrics import NullSink, TopicMetrics
    from kafka_ingest.topics.orders import ORDERS

    spec = replace(ORDERS, topic=_topic(task))
    _provision(spec.topic)
    days: dict[str, list[str]] = task["days"]
    registry = SchemaRegistryClient({"url": REGISTRY, "timeout": DEFAULT_TIMEOUT_S})

    def run() -> tuple[int, int]:
        published = dlq = 0
        for day, files in days.items():
            with tuned_for_ingestion():  # as the operator does, from before the job is built
                job, _ = build_job(
                    spec,
                    JobSettings(extract_date=day),
                    kafka_config={"bootstrap.servers": BOOTSTRAP},
                    registry_client=registry,
                    checkpoint_topic=CHECKPOINT_TOPIC,
                    auto_register=True,
                    metrics=TopicMetrics(spec.topic, NullSink()),
                    run=RunInfo("bench", f"bench-{uuid.uuid4().hex[:8]}", "publish", -1, 1),
                )
                for summary in job.run(files):
                    published += summary.published
                    dlq += summary.dlq
        return published, dlq

    seconds, (published, dlq) = _timed(run)
    return {
        "seconds": seconds,
        "topic": spec.topic,
        "dlq_topic": spec.dlq_topic,
        "published": published,
        "dlq": dlq,
    }


def pipeline_dag(task: dict[str, Any], *, lineage: bool = False) -> dict[str, Any]:
    """The orders DAG through ``dag.test()``: sensor, file listing, mapped publish, report (lineage
    off unless ``pipeline_dag_lineage`` asks for it)."""
    if not lineage:
        os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "true"
    import great_expectations  # noqa: F401
    from airflow.api.common.delete_dag import delete_dag
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    from kafka_ingest.dag_factory import build_ingest_dag
    from kafka_ingest.operators.datasets import OrdersToKafkaOperator
    from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
    from kafka_ingest.testing.provision import provision_topics

    topic = _topic(task)
    os.environ["AIRFLOW_VAR_EXTRACTS_ROOT"] = task["extracts_root"]

    class BenchOrdersOperator(OrdersToKafkaOperator):
        spec = replace(OrdersToKafkaOperator.spec, topic=topic)

    provision_topics(BOOTSTRAP, BenchOrdersOperator.spec, checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC)

    dag_id = topic.replace(".", "_")
    dag = build_ingest_dag(BenchOrdersOperator, dag_id=dag_id, schedule=None)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )
    try:
        seconds, run = _timed(lambda: dag.test(logical_date=datetime(2026, 1, 1, tzinfo=UTC)))
        state = str(run.state)
    finally:
        delete_dag(dag_id, keep_records_in_log=False)
    return {"seconds": seconds, "topic": topic, "dlq_topic": f"{topic}.dlq", "state": state}


def pipeline_dag_lineage(task: dict[str, Any]) -> dict[str, Any]:
    """``pipeline-dag`` with OpenLineage on (the provider's ``file`` transport, as a deployment
    would point it at Marquez): what lineage costs a run (docs/observability.md)."""
    events = Path(task["log"]).with_suffix(".lineage.jsonl")
    events.unlink(missing_ok=True)
    os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(events), "append": True}
    )
    os.environ.pop("AIRFLOW__OPENLINEAGE__DISABLED", None)
    result = pipeline_dag(task, lineage=True)
    result["lineage_events"] = len(events.read_text().splitlines()) if events.exists() else 0
    return result


# -- the ceilings ------------------------------------------------------------------------------


def _valid_tables(task: dict[str, Any]) -> tuple[list[bytes], list[Any]]:
    """The extract's valid rows (those the pipeline publishes): keys, and Avro-shaped Arrow tables."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from kafka_ingest.topics.orders import ORDERS

    table = pacsv.read_csv(
        task["file"],
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(ORDERS.all_columns, pa.string()), strings_can_be_null=False
        ),
    )
    table = table.filter(pa.array(np.load(task["valid_mask"])))
    keys = [k.encode() for k in table.column("order_number").to_pylist()]
    chunks = [
        ORDERS.to_table(ORDERS.prepare(table.slice(start, 50_000).to_pandas()))
        for start in range(0, table.num_rows, 50_000)
    ]
    return keys, chunks


def _schema_id(topic: str) -> tuple[Any, int]:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from kafka_ingest.registry import load_schema, resolve_schema_id
    from kafka_ingest.topics.orders import ORDERS

    schema = load_schema(ORDERS.schema_path)
    client = SchemaRegistryClient({"url": REGISTRY, "timeout": DEFAULT_TIMEOUT_S})
    return schema, resolve_schema_id(client, f"{topic}-value", schema, auto_register=True)


def _provision(topic: str) -> None:
    """The brokers create no topics: the bench's own are provisioned like the product's."""
    from kafka_ingest.testing.provision import provision_topics
    from kafka_ingest.topics.orders import ORDERS

    provision_topics(BOOTSTRAP, replace(ORDERS, topic=topic), checkpoint_topic=CHECKPOINT_TOPIC)


def _produce_batches(
    topic: str,
    keys: list[bytes],
    values: list[Any],
    batch_size: int,
    encode: Callable[[Any], bytes] | None = None,
) -> int:
    """Transactional batches with the product's producer settings, no callback, no headers."""
    from confluent_kafka import Producer

    from kafka_ingest.publish.config import producer_config

    _provision(topic)
    producer = Producer(producer_config({"bootstrap.servers": BOOTSTRAP}, f"bench-{uuid.uuid4().hex}"))
    producer.init_transactions(60)
    produce, poll = producer.produce, producer.poll
    total = len(keys)
    for start in range(0, total, batch_size):
        producer.begin_transaction()
        for i in range(start, min(start + batch_size, total)):
            value = encode(values[i]) if encode is not None else values[i]
            while True:
                try:
                    produce(topic, value, keys[i])
                    break
                except BufferError:
                    poll(0.05)
        producer.commit_transaction(60)
    producer.flush(60)
    return total


def limit_fastavro(task: dict[str, Any]) -> dict[str, Any]:
    """Pre-parsed dicts → fastavro record by record → the same transactional producer, per batch."""
    from kafka_ingest.encode.avro import AvroEncoder, records_from_table

    keys, tables = _valid_tables(task)
    records = [record for table in tables for record in records_from_table(table)]
    del tables
    topic = _topic(task)
    schema, schema_id = _schema_id(topic)
    encode = AvroEncoder(schema, schema_id).encode
    seconds, produced = _timed(lambda: _produce_batches(topic, keys, records, task["batch_size"], encode))
    return {"seconds": seconds, "topic": topic, "published": produced}


def limit_bytes(task: dict[str, Any]) -> dict[str, Any]:
    """Values encoded before the clock starts: only the transactional produce loop is timed."""
    from kafka_ingest.encode.table import ColumnarTableEncoder

    keys, tables = _valid_tables(task)
    topic = _topic(task)
    schema, schema_id = _schema_id(topic)
    encoder = ColumnarTableEncoder(schema, schema_id)
    values: list[bytes] = []
    for table in tables:
        encoded, errors = encoder.encode_table(table)
        assert not errors, errors[:3]
        values.extend(v for v in encoded if v is not None)
    del tables
    seconds, produced = _timed(lambda: _produce_batches(topic, keys, values, task["batch_size"]))
    return {"seconds": seconds, "topic": topic, "published": produced}


# -- the composed peer -------------------------------------------------------------------------

PEER_CODE = r"[A-Z0-9][A-Z0-9-]{0,63}"


def peer_expectations() -> list[Any]:
    """The order rules as plain GX expectations. Left out (a user would struggle): items JSON and
    its per-item rules, total == sum(quantity x unit_price), and first-occurrence-wins duplicates."""
    import great_expectations as gx

    e = gx.expectations
    required = ("order_number", "user_id", "status", "items", "total_price", "currency", "created_at")
    return [
        *(e.ExpectColumnValuesToNotBeNull(column=c) for c in required),
        e.ExpectColumnValuesToMatchRegex(column="order_number", regex=f"^{PEER_CODE}$"),
        e.ExpectColumnValuesToBeInSet(
            column="status", value_set=["CREATED", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"]
        ),
        e.ExpectColumnValuesToBeInSet(column="currency", value_set=["KRW", "USD", "EUR", "JPY"]),
        e.ExpectColumnValuesToMatchRegex(column="total_price", regex=r"^[0-9]{1,10}(\.[0-9]{1,2})?$"),
        e.ExpectColumnValuesToMatchRegex(
            column="created_at",
            regex=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$",
        ),
        e.ExpectColumnValuesToMatchRegex(column="items", regex=r"^\[\{"),
    ]


def peer_records(path: str, topic: str, stats: dict[str, int]) -> Iterator[tuple[bytes, bytes]]:
    """The user's producer_function: pandas reads it all, GX validates it all, valid rows are
    converted and serialised with confluent-kafka's AvroSerializer (real registry client)."""
    import great_expectations as gx
    import pandas as pd
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from kafka_ingest.topics.orders import ORDERS

    df = pd.read_csv(path, dtype=str)
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("orders").add_dataframe_asset("orders")
    definition = batch.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name="orders", expectations=peer_expectations()))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="v", data=definition, suite=suite)
    )
    result = validation.run(batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"})
    bad: set[int] = set()
    for r in result.results:
        bad.update(r.result.get("unexpected_index_list") or [])
    valid = df.drop(index=list(bad))
    stats["valid"] = len(valid)
    serializer = AvroSerializer(
        SchemaRegistryClient({"url": REGISTRY, "timeout": DEFAULT_TIMEOUT_S}), ORDERS.schema_path.read_text()
    )
    ctx = SerializationContext(topic, MessageField.VALUE)
    for row in valid.itertuples(index=False):
        record = {
            "order_number": row.order_number,
            "user_id": row.user_id,
            "status": row.status,
            "items": [
                {
                    "product_id": i["product_id"],
                    "quantity": int(i["quantity"]),
                    "unit_price": Decimal(i["unit_price"]),
                }
                for i in json.loads(row.items)
            ],
            "total_price": Decimal(row.total_price),
            "currency": row.currency,
            "created_at": datetime.fromisoformat(row.created_at),
            "coupon_code": row.coupon_code if isinstance(row.coupon_code, str) and row.coupon_code else None,
        }
        yield row.order_number.encode(), serializer(record, ctx)


def noop_delivery(err: Any, msg: Any) -> None:
    """The tuned peer's delivery callback (the provider's default logs one line per message)."""


def _peer(task: dict[str, Any], *, tuned: bool) -> dict[str, Any]:
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401
    from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator

    topic = _topic(task)
    _provision(topic)
    stats: dict[str, int] = {}
    options: dict[str, Any] = (
        {"synchronous": False, "delivery_callback": "bench.variants.noop_delivery"} if tuned else {}
    )
    operator = ProduceToTopicOperator(
        task_id="produce",
        topic=topic,
        kafka_config_id="kafka_default",
        producer_function=peer_records,
        producer_function_args=(task["file"], topic, stats),
        **options,
    )
    seconds, _ = _timed(lambda: operator.execute(context={}))
    return {"seconds": seconds, "topic": topic, "published": stats["valid"]}


VARIANTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "pipeline": pipeline,
    "pipeline-days": pipeline_days,
    "pipeline-dag": pipeline_dag,
    "pipeline-dag-lineage": pipeline_dag_lineage,
    "limit-fastavro": limit_fastavro,
    "limit-bytes": limit_bytes,
    "peer": lambda task: _peer(task, tuned=True),
    "peer-defaults": lambda task: _peer(task, tuned=False),
}

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
