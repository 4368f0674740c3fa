"""Airflow DAG ``replay_dlq``: replay a selection of a topic's DLQ after fixing the cause.

How to use it on call: the DAG's doc and docs/dlq-replay.md.
"""

import os

from kafka_ingest.replay_dag import build_replay_dag

dag = build_replay_dag(
    # On a secured cluster a replay logs in as a principal of its own, which may read the DLQ and
    # the topic (the stack's secured mode sets kafka_replay; docs/security.md).
    kafka_config_id=os.environ.get("KAFKA_INGEST_REPLAY_CONN_ID", "kafka_default"),
    schema_registry_conn_id="schema_registry_default",
)
