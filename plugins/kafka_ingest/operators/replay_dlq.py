"""Replay a topic's DLQ from any DAG: ``ReplayDlqOperator`` (the ``replay_dlq`` DAG uses it).

What a retry does: the replay's id stays the same (by default the DAG run's), so the retry fences
any attempt still running, reads the replay's checkpoint and resumes after its last committed
batch with the same plan; a replay already complete does nothing. Wrong input (a corrections
file with unknown columns, duplicate keys...) fails at once without retries and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from kafka_ingest.errors import PermanentError
from kafka_ingest.operators.extract_to_kafka import _as_bool, run_info
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.replay.audit import DEFAULT_REPLAYS_TOPIC
from kafka_ingest.specs import TopicSpec
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS

#: Datasets a replay can name; a scaffolded topic's operator passes ``spec=`` instead.
SPECS: dict[str, TopicSpec] = {spec.dataset: spec for spec in (ORDERS, PAYMENTS)}


class ReplayDlqOperator(BaseOperator):
    """Replays selected envelopes of ``<topic>.dlq`` to ``topic``, exactly once, with an audit record.

    :param dataset: which spec's rules to apply (``orders``, ``payments``), unless ``spec`` is given.
    :param topic: the topic (default: the spec's); its DLQ is ``<topic>.dlq``.
    :param date_from, date_to: inclusive bounds on the envelopes' ``source.date``.
    :param stages, rules, error_types, files, keys: any-of filters (lists or comma-separated text).
    :param source: ``original`` (re-run the rules on the envelope's row) or ``corrections``.
    :param corrections_file: CSV or JSON Lines keyed by the topic's key (source ``corrections``).
    :param validate_only: dry run: report each envelope's fate, publish nothing.
    :param topic_suffix: appended to the spec's topic when ``topic`` is blank (tests, staging).
    :param replay_id: names the replay (default: ``<dag id>/<run id>``); the same id resumes it.
    """

    template_fields: Sequence[str] = (
        "dataset",
        "topic",
        "date_from",
        "date_to",
        "stages",
        "rules",
        "error_types",
        "files",
        "keys",
        "source",
        "corrections_file",
        "validate_only",
        "replay_id",
        "batch_size",
        "kafka_config_id",
        "schema_registry_conn_id",
    )
    ui_color = "#fbeee8"

    def __init__(
        self,
        *,
        dataset: str = "",
        spec: TopicSpec | None = None,
        topic: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        stages: Any = None,
        rules: Any = None,
        error_types: Any = None,
        files: Any = None,
        keys: Any = None,
        source: str = "original",
        corrections_file: str | None = None,
        validate_only: bool | str = False,
        replay_id: str | None = None,
        batch_size: int | str = 1_000,
        kafka_config_id: str = "kafka_default",
        schema_registry_conn_id: str = "schema_registry_default",
        checkpoint_topic: str = DEFAULT_CHECKPOINT_TOPIC,
        replays_topic: str = DEFAULT_REPLAYS_TOPIC,
        topic_suffix: str = "",
        auto_register: bool = False,
        producer_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.spec = spec
        self.topic = topic
        self.date_from, self.date_to = date_from, date_to
        self.stages, self.rules, self.error_types, self.files, self.keys = (
            stages,
            rules,
            error_types,
            files,
            keys,
        )
        self.source = source
        self.corrections_file = corrections_file
        self.validate_only = validate_only
        self.replay_id = replay_id
        self.batch_size = batch_size
        self.kafka_config_id = kafka_config_id
        self.schema_registry_conn_id = schema_registry_conn_id
        self.checkpoint_topic = checkpoint_topic
        self.replays_topic = replays_topic
        self.auto_register = auto_register
        self.producer_config = producer_config or {}
        self.topic_suffix = topic_suffix

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            report = self._run(context)
        except Exception as exc:
            if isinstance(exc, PermanentError):
                raise AirflowFailException(str(exc)) from exc
            if isinstance(exc, AirflowException):
                raise
            raise AirflowException(f"{type(exc).__name__}: {exc}") from exc
        self.log.info("%s", report["summary"])
        return report

    def _spec(self) -> TopicSpec:
        from kafka_ingest.replay.errors import ReplayInputError

        spec = self.spec or SPECS.get(str(self.dataset))
        if spec is None:
            raise ReplayInputError(f"Unknown dataset {self.dataset!r}: one of {', '.join(SPECS)}.")
        topic = str(self.topic or "").strip() or spec.topic + self.topic_suffix
        return replace(spec, topic=topic)

    def _run(self, context: Context) -> dict[str, Any]:
        from kafka_ingest.hooks.kafka import TransactionalProducerHook
        from kafka_ingest.hooks.schema_registry import SchemaRegistryHook
        from kafka_ingest.replay.job import ReplaySettings
        from kafka_ingest.replay.selection import Selection
        from kafka_ingest.replay.wiring import build_replay_job
        from kafka_ingest.runtime.metrics import TopicMetrics, airflow_stats_sink

        spec = self._spec()
        run = run_info(context)
        selection = Selection.from_params(
            {
                name: getattr(self, name)
                for name in ("date_from", "date_to", "stages", "rules", "error_types", "files", "keys")
            }
        )
        settings = ReplaySettings(
            replay_id=str(self.replay_id or "").strip() or f"{run.dag_id}/{run.run_id}",
            selection=selection,
            source=str(self.source),
            corrections_file=str(self.corrections_file).strip() or None if self.corrections_file else None,
            dry_run=_as_bool(self.validate_only),
            who=triggering_user(context),
            batch_size=int(self.batch_size),
        )
        job = build_replay_job(
            spec,
            settings,
            kafka_config=TransactionalProducerHook(self.kafka_config_id).client_config(),
            conn_id=self.kafka_config_id,
            registry_client=SchemaRegistryHook(self.schema_registry_conn_id).get_client(),
            checkpoint_topic=self.checkpoint_topic,
            replays_topic=self.replays_topic,
            auto_register=self.auto_register,
            producer_overrides=self.producer_config,
            metrics=TopicMetrics(spec.topic, airflow_stats_sink()),
            run=run,
        )
        return job.run().as_dict()


def triggering_user(context: Context) -> str:
    """Who started the DAG run (Airflow records the user who triggered it); "" when unknown."""
    return str(getattr(context.get("dag_run"), "triggering_user_name", None) or "")
