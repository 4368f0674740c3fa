"""The operator data teams use: publish one dataset day's extract files to a topic, exactly once.

``ExtractToKafkaOperator`` owns the Airflow side (connections, templated arguments, run ids,
exceptions chosen by whether a retry can help, the XCom summary) and hands the work to
:class:`~kafka_ingest.pipeline.job.IngestionJob`. A topic's operator is a two-line subclass that sets
``spec`` (see ``operators/datasets.py``).

What a retry does: every file resumes after its last committed batch (the checkpoint), a file
already published completely is skipped, and the retry's producer fences any attempt still
running (a zombie), so each valid row is published once whatever happens to a try.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from kafka_ingest.batches import RunInfo
from kafka_ingest.errors import PermanentError
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.specs import TopicSpec

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from kafka_ingest.pipeline.settings import JobSettings


class ExtractToKafkaOperator(BaseOperator):
    """Validates extract files row by row and publishes them to Kafka in transactional batches.

    Valid rows go to ``topic`` Avro-encoded against the Schema Registry; rejected rows go to
    ``<topic>.dlq`` with their reason, in the same transaction as their batch; each batch's
    source position is committed with it to the checkpoint topic.

    :param spec: the topic spec (subclasses set it as a class attribute instead).
    :param extract_path: a file, a folder (its ``part-*`` files), a glob, or a list of files;
        local paths or fsspec URLs. Templated.
    :param day_files: every part file of the day, when ``extract_path`` is only some of them
        (one mapped task per file): the duplicate rule spans the whole day. Templated.
    :param extract_date: the day the files belong to (``{{ ds }}``); part of checkpoint keys.
    :param topic: overrides the spec's topic (and so its DLQ topic and subject).
    :param kafka_config_id: Kafka connection (librdkafka settings in its extra).
    :param schema_registry_conn_id: Schema Registry connection.
    :param checkpoint_topic: compacted topic holding source positions.
    :param batch_size: rows per batch and per transaction.
    :param auto_register: register the local schema if needed (dev); False requires an identical
        registered version (prod).
    :param reprocess: republish files already published (new records, same keys).
    :param validate_only: a dry run: read, validate and encode only; publish nothing and report
        what would be published and dead-lettered. (The DAG's Param calls it ``dry_run``, a name
        BaseOperator takes.)
    :param max_dlq_ratio: fail once more than this share of rows read goes to the DLQ.
    :param max_dlq_rows: fail once more than this many rows go to the DLQ.
    :param producer_config: librdkafka settings over the connection's and the defaults.
    """

    template_fields: Sequence[str] = (
        "extract_path",
        "day_files",
        "extract_date",
        "topic",
        "kafka_config_id",
        "schema_registry_conn_id",
        "checkpoint_topic",
        "reprocess",
        "validate_only",
        "batch_size",
        "max_dlq_ratio",
        "max_dlq_rows",
    )
    ui_color = "#e8f1fb"
    spec: TopicSpec | None = None
    #: What the run learnt, for the OpenLineage facets built after it (files, servers, summary, error).
    _lineage_facts: dict[str, Any] | None = None

    def __init__(
        self,
        *,
        extract_path: str | Sequence[str],
        spec: TopicSpec | None = None,
        day_files: Sequence[str] | None = None,
        extract_date: str = "{{ ds }}",
        topic: str | None = None,
        kafka_config_id: str = "kafka_default",
        schema_registry_conn_id: str = "schema_registry_default",
        checkpoint_topic: str = DEFAULT_CHECKPOINT_TOPIC,
        batch_size: int | str = 50_000,
        auto_register: bool = True,
        reprocess: bool | str = False,
        validate_only: bool | str = False,
        max_dlq_ratio: float | str | None = 0.1,
        max_dlq_rows: int | str | None = None,
        producer_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if spec is not None:
            self.spec = spec
        if self.spec is None:
            raise ValueError(f"{type(self).__name__} needs a TopicSpec: pass spec= or set it on a subclass.")
        self.extract_path = extract_path
        self.day_files = day_files
        self.extract_date = extract_date
        self.topic = topic
        self.kafka_config_id = kafka_config_id
        self.schema_registry_conn_id = schema_registry_conn_id
        self.checkpoint_topic = checkpoint_topic
        self.batch_size = batch_size
        self.auto_register = auto_register
        self.reprocess = reprocess
        self.validate_only = validate_only
        self.max_dlq_ratio = max_dlq_ratio
        self.max_dlq_rows = max_dlq_rows
        self.producer_config = producer_config or {}

    def execute(self, context: Context) -> dict[str, Any]:
        assert self.spec is not None
        spec = replace(self.spec, topic=self.topic) if self.topic else self.spec
        self._lineage_facts = {"dry_run": str(self.validate_only).strip().lower() in ("true", "1", "yes")}
        try:
            summary = self._run(spec, context)
        except Exception as exc:
            self._lineage_facts["error"] = exc
            if isinstance(exc, PermanentError):
                raise AirflowFailException(str(exc)) from exc
            if isinstance(exc, AirflowException):
                raise
            raise AirflowException(f"{type(exc).__name__}: {exc}") from exc
        self.log.info(
            "%s: %d files, %d rows read, %d %s, %d to DLQ, %d skipped (already published).",
            spec.topic,
            summary["files"],
            summary["rows_read"],
            summary["published"],
            "would be published (dry run: nothing was)" if summary["validate_only"] else "published",
            summary["dlq"],
            summary["skipped"],
        )
        self._lineage_facts["summary"] = summary
        return summary

    def _run(self, spec: TopicSpec, context: Context) -> dict[str, Any]:
        # Heavy imports (GX, fastavro, pandas) happen here, not at DAG parse time.
        from kafka_ingest.hooks.kafka import TransactionalProducerHook
        from kafka_ingest.hooks.schema_registry import SchemaRegistryHook
        from kafka_ingest.pipeline.summary import summarize
        from kafka_ingest.pipeline.wiring import build_job
        from kafka_ingest.provision.access import READ_WRITE, WRITE, check_kafka_access
        from kafka_ingest.read import resolve_extract_files
        from kafka_ingest.runtime.allocation import tuned_for_ingestion
        from kafka_ingest.runtime.metrics import TopicMetrics, airflow_stats_sink

        files = resolve_extract_files(self.extract_path)
        day_files = resolve_extract_files(self.day_files) if self.day_files else files
        if not files:
            self.log.warning("No extract files at %s: nothing to publish.", self.extract_path)
        metrics = TopicMetrics(spec.topic, airflow_stats_sink())
        settings = self._settings()
        kafka_config = TransactionalProducerHook(self.kafka_config_id).client_config()
        if self._lineage_facts is not None:
            self._lineage_facts.update(
                files=[str(f) for f in files], servers=kafka_config.get("bootstrap.servers", "")
            )
        if not settings.validate_only:
            needs = {spec.topic: WRITE, spec.dlq_topic: WRITE, self.checkpoint_topic: READ_WRITE}
            check_kafka_access(kafka_config, self.kafka_config_id, needs=needs, timeout_s=settings.timeout_s)
        # Tuned from before the job is built: the task's heap (Airflow, GX, pandas) is frozen
        # before building the job's clients allocates enough to set off a full collection of it
        # (runtime/allocation.py).
        with tuned_for_ingestion(), registry_access(self.schema_registry_conn_id):
            job, schema_id = build_job(
                spec,
                settings,
                kafka_config=kafka_config,
                registry_client=SchemaRegistryHook(self.schema_registry_conn_id).get_client(),
                checkpoint_topic=self.checkpoint_topic,
                auto_register=self.auto_register,
                producer_overrides=self.producer_config,
                metrics=metrics,
                run=run_info(context),
            )
            summaries = job.run(files, day_files)
        return summarize(
            summaries, topic=spec.topic, schema_id=schema_id, validate_only=settings.validate_only
        )

    # -- OpenLineage (apache-airflow-providers-openlineage calls these; kafka_ingest/lineage.py) ----

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        return self._lineage("start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self._lineage("complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        return self._lineage("failure")

    def _lineage(self, event: str) -> OperatorLineage:
        """The event's facets; never raises (a lineage problem is logged, the task goes on)."""
        from kafka_ingest.lineage import LineageRun, operator_lineage, safely

        def build() -> OperatorLineage:
            assert self.spec is not None
            spec = replace(self.spec, topic=self.topic) if self.topic else self.spec
            facts = self._lineage_facts if event != "start" and self._lineage_facts else self._start_facts()
            run = LineageRun(
                files=list(facts.get("files", [])),
                kafka_servers=str(facts.get("servers", "")),
                dry_run=bool(facts.get("dry_run")),
                summary=facts.get("summary"),
                error=facts.get("error"),
            )
            return operator_lineage(spec, run, complete=event != "start")

        return safely(build, event)

    def _start_facts(self) -> dict[str, Any]:
        """Before the run: the files and servers it will use (a listing and a connection lookup)."""
        from kafka_ingest.hooks.kafka import TransactionalProducerHook
        from kafka_ingest.read import resolve_extract_files

        return {
            "files": [str(f) for f in resolve_extract_files(self.extract_path)],
            "servers": TransactionalProducerHook(self.kafka_config_id)
            .client_config()
            .get("bootstrap.servers", ""),
            "dry_run": _as_bool(self.validate_only),
        }

    def _settings(self) -> JobSettings:
        """The run's knobs; DAG Params arrive as rendered text, so they are coerced here."""
        from kafka_ingest.pipeline.settings import JobSettings

        batch_size = int(self.batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        return JobSettings(
            extract_date=str(self.extract_date),
            batch_size=batch_size,
            reprocess=_as_bool(self.reprocess),
            validate_only=_as_bool(self.validate_only),
            max_dlq_ratio=_as_optional(self.max_dlq_ratio, float),
            max_dlq_rows=_as_optional(self.max_dlq_rows, int),
        )


@contextmanager
def registry_access(conn_id: str) -> Iterator[None]:
    """A registry 401/403 names the connection it came through (the subject is already named)."""
    from kafka_ingest.provision.access import registry_denied
    from kafka_ingest.registry import RegistryAuthError

    try:
        yield
    except RegistryAuthError as exc:
        raise registry_denied(exc, conn_id) from exc


def _as_bool(value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no", ""):
        return False
    raise ValueError(f"Expected true or false, got {value!r}.")


def _as_optional(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    return kind(value)


def run_info(context: Context) -> RunInfo:
    """The dag/run/task/try ids of the running task instance, for headers, DLQ records and
    checkpoints (the run's clear number tells a retry from a rerun)."""
    ti = context["ti"]
    dag_run = context.get("dag_run")
    return RunInfo(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number or 0,
        clear_number=getattr(dag_run, "clear_number", 0) or 0,
    )
