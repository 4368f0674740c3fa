"""Airflow DAG ``ingest_payments``: the daily payments extract into ``shopping.payment.processed``.

What it does and how to backfill it: the DAG's doc (``doc_md``, built by the factory) and
docs/backfill.md. Pass other connection ids here to point this DAG at another cluster.
"""

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import PaymentsToKafkaOperator

dag = build_ingest_dag(
    PaymentsToKafkaOperator,
    kafka_config_id="kafka_default",
    schema_registry_conn_id="schema_registry_default",
)
