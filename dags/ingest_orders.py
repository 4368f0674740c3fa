"""Airflow DAG ``ingest_orders``: the daily orders extract into ``shopping.order.created``.

What it does and how to backfill it: the DAG's doc (``doc_md``, built by the factory) and
docs/backfill.md. Pass other connection ids here to point this DAG at another cluster.
"""

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import OrdersToKafkaOperator

dag = build_ingest_dag(
    OrdersToKafkaOperator,
    kafka_config_id="kafka_default",
    schema_registry_conn_id="schema_registry_default",
)
