"""Daily ingestion of the payments extract into ``shopping.payment.processed`` (see the DAG's doc)."""

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import PaymentsToKafkaOperator

dag = build_ingest_dag(PaymentsToKafkaOperator)
