"""OpenLineage facets of an ingestion task: which extract files fed which topic, and what GX found.

The operator's ``get_openlineage_facets_on_start/on_complete/on_failure`` call :func:`operator_lineage`
(through :func:`safely`) with what the run knew. A lineage consumer (Marquez, DataHub, ...) then sees:

- **inputs**: one dataset per extract file, named as OpenLineage names files (``file`` + absolute
  path, ``s3://bucket`` + key, ...), with a ``schema`` facet (the columns the reader reads, as text)
  and a ``dataQualityAssertions`` facet: one assertion per row rule (EXTRACTS.md's duplicate rule
  and "the row parses" included), passed or not, with its failing row count;
- **outputs**: the topic (``kafka://host:port`` + topic) with a ``schema`` facet from the Avro value
  schema, a ``kafkaIngestSchema`` facet (registry subject and schema id) and ``outputStatistics``
  (rows published, value bytes); the DLQ topic with its row count. The checkpoint topic is
  bookkeeping, not data, and is left out;
- **run facets**: ``kafkaIngest`` (the summary: read, published, DLQ, skipped, by stage and rule;
  ``dryRun``) and, on failure, ``errorMessage``.

Nothing here may fail or slow the task: every entry point goes through :func:`safely`, and nothing
here talks to a broker, a registry or an extract store (files are already listed; schemas are read
from the repo). No row value is ever put into an event: counts, names and the error message, which
is scrubbed of anything shaped like a card number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attr
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa
from openlineage.client.facet_v2 import error_message_run, schema_dataset
from openlineage.client.facet_v2 import output_statistics_output_dataset as output_statistics
from openlineage.client.generated.base import DatasetFacet, RunFacet

from kafka_ingest.pan import scrub_pans
from kafka_ingest.specs import Stage, TopicSpec

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/kafka-ingest/kafka-ingest"
#: Where our own facets' JSON schemas would be published; consumers only need the URL to be stable.
FACET_SCHEMA_BASE = "https://kafka-ingest.invalid/openlineage/facets/1-0-0"
#: The assertion standing for the read stage: a row that cannot be parsed fails it.
PARSES_ASSERTION = "row_parses"


@dataclass
class LineageRun:
    """What the operator learnt while running, for the facets built after it (all optional)."""

    files: list[str] = field(default_factory=list)
    kafka_servers: str = ""
    dry_run: bool = False
    summary: Mapping[str, Any] | None = None
    error: BaseException | None = None


def safely(build: Callable[[], OperatorLineage], what: str) -> OperatorLineage:
    """``build()``, or empty lineage (with one warning) if it raises: lineage never fails a task."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    try:
        return build()
    except Exception as exc:
        log.warning(
            "OpenLineage %s facets could not be built (%s: %s); the task goes on.",
            what,
            type(exc).__name__,
            exc,
        )
        return OperatorLineage()


def operator_lineage(spec: TopicSpec, run: LineageRun, *, complete: bool) -> OperatorLineage:
    """The task's lineage; ``complete`` False: at start (datasets only, no statistics)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    summary = run.summary if complete else None
    per_file = {str(f["file"]): f for f in (summary or {}).get("per_file", [])}
    inputs = [input_dataset(spec, path, per_file.get(str(path))) for path in run.files]
    outputs = output_datasets(spec, run.kafka_servers, summary) if run.kafka_servers else []
    return OperatorLineage(
        inputs=inputs,
        outputs=outputs,
        run_facets=run_facets(run, summary) if complete or run.dry_run else {},
    )


# -- our own facets (OpenLineage "custom facets": the base classes fill _producer and _schemaURL) --


@attr.define
class KafkaIngestRunFacet(RunFacet):
    """The ingestion summary: rows read, published, dead-lettered (by stage and rule), skipped."""

    dryRun: bool
    files: int
    rowsRead: int
    published: int
    dlq: int
    skipped: int
    dlqByStage: dict[str, int] = attr.field(factory=dict)
    dlqByRule: dict[str, int] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA_BASE}/KafkaIngestRunFacet.json#/$defs/KafkaIngestRunFacet"


@attr.define
class KafkaIngestSchemaDatasetFacet(DatasetFacet):
    """The Schema Registry subject and id the topic's values are encoded with."""

    subject: str
    schemaId: int | None = None

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA_BASE}/KafkaIngestSchemaDatasetFacet.json#/$defs/KafkaIngestSchemaDatasetFacet"


# -- naming -------------------------------------------------------------------------------------


def file_dataset_name(path: str) -> tuple[str, str]:
    """OpenLineage's (namespace, name) for an extract file: ``file`` + absolute path for local
    files, ``<scheme>://<bucket>`` + key for object stores (s3, gs, abfs, ...)."""
    text = str(path)
    parts = urlsplit(text)
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:  # one letter: a Windows drive
        local = parts.path if parts.scheme == "file" else text
        return "file", str(Path(local).absolute())
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def kafka_namespace(bootstrap_servers: str) -> str:
    """``kafka://host:port`` of the first bootstrap server (OpenLineage's Kafka naming)."""
    first = bootstrap_servers.split(",")[0].strip()
    if "://" in first:  # e.g. SASL_SSL://host:port listeners written with their protocol
        first = first.split("://", 1)[1]
    return f"kafka://{first}"


# -- datasets -----------------------------------------------------------------------------------


def input_dataset(spec: TopicSpec, path: str, file_summary: Mapping[str, Any] | None) -> Any:
    namespace, name = file_dataset_name(path)
    columns = [
        schema_dataset.SchemaDatasetFacetFields(name=column, type="string") for column in spec.all_columns
    ]
    facets: dict[str, Any] = {"schema": schema_dataset.SchemaDatasetFacet(fields=columns)}
    input_facets: dict[str, Any] = {}
    if file_summary is not None:
        input_facets["dataQualityAssertions"] = quality_assertions(spec, file_summary)
    return InputDataset(namespace=namespace, name=name, facets=facets, inputFacets=input_facets)


def quality_assertions(spec: TopicSpec, file_summary: Mapping[str, Any]) -> Any:
    """One assertion per row rule of ``spec`` (and one for parsing), from a file's DLQ counts.

    The counts are the rows dead-lettered for that rule in this run (a row failing two rules counts
    under both). A file skipped as already published carries all-passing assertions of zero rows.
    """
    from kafka_ingest.validation import row_rules

    by_rule: Mapping[str, int] = file_summary.get("dlq_by_rule", {}) or {}
    by_stage: Mapping[str, int] = file_summary.get("dlq_by_stage", {}) or {}
    columns = set(spec.all_columns)
    assertions = [_assertion(PARSES_ASSERTION, int(by_stage.get(str(Stage.READ), 0)), None)]
    for rule in row_rules(spec):
        column = rule.kwargs.get("column")
        assertions.append(
            _assertion(rule.name, int(by_rule.get(rule.name, 0)), column if column in columns else None)
        )
    return dqa.DataQualityAssertionsDatasetFacet(assertions=assertions)


def _assertion(name: str, failures: int, column: str | None) -> Any:
    """An assertion with its failing row count where the installed client knows ``failures``."""
    kwargs: dict[str, Any] = {"assertion": name, "success": failures == 0, "column": column}
    if "failures" in attr.fields_dict(dqa.Assertion):
        kwargs["failures"] = failures
    return dqa.Assertion(**kwargs)


def output_datasets(spec: TopicSpec, servers: str, summary: Mapping[str, Any] | None) -> list[Any]:
    """The topic (schema, registry id, statistics) and its DLQ (row count); never the checkpoints."""
    namespace = kafka_namespace(servers)
    topic = str((summary or {}).get("topic") or spec.topic)
    schema_id = (summary or {}).get("schema_id")
    facets: dict[str, Any] = {
        "schema": schema_dataset.SchemaDatasetFacet(fields=avro_fields(spec.schema_path)),
        "kafkaIngestSchema": KafkaIngestSchemaDatasetFacet(
            subject=f"{topic}-value", schemaId=int(schema_id) if schema_id else None
        ),
    }
    topic_stats: dict[str, Any] = {}
    dlq_stats: dict[str, Any] = {}
    if summary is not None and not summary.get("dry_run"):
        per_file = summary.get("per_file", [])
        topic_stats["outputStatistics"] = output_statistics.OutputStatisticsOutputDatasetFacet(
            rowCount=int(summary.get("published", 0)),
            size=sum(int(f.get("bytes_published", 0)) for f in per_file),
        )
        dlq_stats["outputStatistics"] = output_statistics.OutputStatisticsOutputDatasetFacet(
            rowCount=int(summary.get("dlq", 0))
        )
    return [
        OutputDataset(namespace=namespace, name=topic, facets=facets, outputFacets=topic_stats),
        OutputDataset(namespace=namespace, name=f"{topic}.dlq", outputFacets=dlq_stats),
    ]


def avro_fields(schema_path: Path) -> list[Any]:
    """The Avro record's fields as OpenLineage schema fields (nested records and arrays kept)."""
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    return [_field(f) for f in schema.get("fields", [])]


def _field(avro_field: Mapping[str, Any]) -> Any:
    type_name, nested = _avro_type(avro_field["type"])
    return schema_dataset.SchemaDatasetFacetFields(
        name=str(avro_field["name"]),
        type=type_name,
        description=avro_field.get("doc"),
        fields=[_field(f) for f in nested] if nested else None,
    )


def _avro_type(avro: Any) -> tuple[str, list[Mapping[str, Any]]]:
    """A readable type name (``decimal(12,2)``, ``array<OrderItem>``, ``string?``) and sub-fields."""
    if isinstance(avro, str):
        return avro, []
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        name, nested = _avro_type(branches[0]) if len(branches) == 1 else ("union", [])
        return (f"{name}?" if "null" in avro else name), nested
    logical = avro.get("logicalType")
    if logical == "decimal":
        return f"decimal({avro.get('precision')},{avro.get('scale', 0)})", []
    if logical:
        return str(logical), []
    kind = avro.get("type")
    if kind == "record":
        return str(avro.get("name", "record")), list(avro.get("fields", []))
    if kind == "array":
        name, nested = _avro_type(avro["items"])
        return f"array<{name}>", nested
    if kind == "enum":
        return f"enum<{avro.get('name')}>", []
    return str(kind), []


# -- run facets ---------------------------------------------------------------------------------


def run_facets(run: LineageRun, summary: Mapping[str, Any] | None) -> dict[str, Any]:
    facets: dict[str, Any] = {"kafkaIngest": summary_facet(run, summary)}
    if run.error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=scrub_pans(f"{type(run.error).__name__}: {run.error}")[:4_000],
            programmingLanguage="python",
        )
    return facets


def summary_facet(run: LineageRun, summary: Mapping[str, Any] | None) -> KafkaIngestRunFacet:
    summary = summary or {}
    by_stage: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    for file in summary.get("per_file", []):
        for target, counts in (
            (by_stage, file.get("dlq_by_stage", {})),
            (by_rule, file.get("dlq_by_rule", {})),
        ):
            for name, count in counts.items():
                target[name] = target.get(name, 0) + int(count)
    return KafkaIngestRunFacet(
        dryRun=bool(summary.get("dry_run", run.dry_run)),
        files=int(summary.get("files", len(run.files))),
        rowsRead=int(summary.get("rows_read", 0)),
        published=int(summary.get("published", 0)),
        dlq=int(summary.get("dlq", 0)),
        skipped=int(summary.get("skipped", 0)),
        dlqByStage=by_stage,
        dlqByRule=by_rule,
    )
