"""Daily ingestion of the orders extract into ``shopping.order.created`` (see the DAG's doc)."""

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import OrdersToKafkaOperator

dag = build_ingest_dag(OrdersToKafkaOperator)
