"""Airflow DAG ``replay_dlq``: replay a selection of a topic's DLQ after fixing the cause.

How to use it on call: the DAG's doc and docs/dlq-replay.md.
"""

from kafka_ingest.replay_dag import build_replay_dag

dag = build_replay_dag(
    kafka_config_id="kafka_default",
    schema_registry_conn_id="schema_registry_default",
)
