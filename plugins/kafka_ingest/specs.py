"""What a topic is: the declarative spec a data engineer writes to add one.

A :class:`TopicSpec` names the dataset folder, the topic, the Avro schema, the key, the extract's
columns, the row rules and two small functions (``prepare`` and ``to_table``). Everything else
(reading, batching, validation, serialization, transactions, checkpoints, DLQ, metrics) belongs to
the framework, so adding a topic never means editing it.

Rules are declared as data (:class:`Rule`), not as Great Expectations objects, so that importing a
spec (which every DAG file does at parse time) never pays for importing GX.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from kafka_ingest.topic_settings import DATA_TOPIC, DLQ_TOPIC, TopicSettings

#: The repository's ``schemas/`` folder; a spec's relative ``schema_file`` resolves against it.
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


class Stage(StrEnum):
    """The pipeline stage at which a row was rejected (the DLQ's ``stage`` field)."""

    READ = "read"
    VALIDATE = "validate"
    SERIALIZE = "serialize"
    PRODUCE = "produce"


@dataclass(frozen=True)
class Rule:
    """One row-level or batch-level rule, declared as a Great Expectations expectation.

    ``name`` is what the DLQ and the docs call the rule (``failed_rules``); ``expectation`` is the
    GX Core expectation class name in snake case (``expect_column_values_to_match_regex``) and
    ``kwargs`` its arguments. Cross-field rules are expressed on a boolean column that the spec's
    ``prepare`` derives (for example ``expect_column_values_to_be_in_set`` on
    ``_total_matches_items`` with ``value_set=[True]``).
    """

    name: str
    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReaderOptions:
    """How a dataset's extract files are read.

    ``json_columns`` are nested columns: CSV carries them as JSON text in one field, JSON Lines as
    JSON values and Parquet as lists of structs; the readers hand all three on as JSON text.
    """

    json_columns: tuple[str, ...] = ()
    csv_delimiter: str = ","
    encoding: str = "utf-8"


#: ``prepare(frame) -> frame``: parse the text columns of one batch and add the derived columns
#: that rules and ``to_table`` use. It must not drop or reorder rows.
PrepareFn = Callable[[pd.DataFrame], pd.DataFrame]
#: ``to_table(frame) -> table``: the valid, prepared rows as an Arrow table shaped like the Avro
#: record (one column per field; decimal128 money, timestamp[ms, UTC] times, list<struct> arrays),
#: in order. Encoders work column-wise on it (``encode/``).
ToTableFn = Callable[[pd.DataFrame], pa.Table]
#: ``mask(value) -> value``: what a sensitive column looks like in DLQ records and logs.
MaskFn = Callable[[str], str]


@dataclass(frozen=True)
class TopicSpec:
    """Everything the framework needs to know about one extract dataset and its topic.

    :param dataset: folder under the extracts root (``orders``); also the checkpoint namespace.
    :param topic: the Kafka topic valid rows go to; bad rows go to ``<topic>.dlq``.
    :param schema_file: the Avro value schema, relative to ``schemas/`` or absolute.
    :param key_field: the column used as the record key (UTF-8) and for the duplicate rule.
    :param columns: columns every extract file must have (a file without one fails the task).
    :param optional_columns: columns that may be absent; read as null when they are.
    :param rules: row-level rules; a row failing any goes to the DLQ with their names.
    :param batch_rules: batch-level rules; failing one fails the task before that file publishes.
    :param prepare: parses text columns and derives the columns rules and records need.
    :param to_table: maps prepared valid rows to an Arrow table shaped like the Avro schema.
    :param event_type: the ``event_type`` header on every published record.
    :param masked_columns: sensitive column -> masking function for DLQ records and logs.
    :param unique_key: whether ``key_field`` must be unique within a day's extract (EXTRACTS.md's
        duplicate rule: the first occurrence in (file name, row) order wins).
    :param reader: reader options for this dataset.
    :param topic_settings: the topic's partitions, replicas, retention, cleanup policy and min ISR,
        applied by ``python -m kafka_ingest topics ensure`` (:mod:`kafka_ingest.topic_settings`).
    :param dlq_settings: the same for ``<topic>.dlq``.
    """

    dataset: str
    topic: str
    schema_file: str
    key_field: str
    columns: tuple[str, ...]
    rules: tuple[Rule, ...]
    prepare: PrepareFn
    to_table: ToTableFn
    event_type: str
    optional_columns: tuple[str, ...] = ()
    batch_rules: tuple[Rule, ...] = ()
    masked_columns: Mapping[str, MaskFn] = field(default_factory=dict)
    unique_key: bool = True
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    topic_settings: TopicSettings = DATA_TOPIC
    dlq_settings: TopicSettings = DLQ_TOPIC

    @property
    def all_columns(self) -> tuple[str, ...]:
        return self.columns + self.optional_columns

    @property
    def schema_path(self) -> Path:
        path = Path(self.schema_file)
        return path if path.is_absolute() else SCHEMAS_DIR / path

    @property
    def dlq_topic(self) -> str:
        return dlq_topic_for(self.topic)

    @property
    def subject(self) -> str:
        return topic_subject_name(self.topic)

    def mask_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Return a copy of ``row`` with every sensitive column masked (non-strings untouched)."""
        masked = dict(row)
        for column, mask in self.masked_columns.items():
            value = masked.get(column)
            if isinstance(value, str) and value:
                masked[column] = mask(value)
        return masked


def dlq_topic_for(topic: str) -> str:
    """EXTRACTS.md's DLQ naming: ``<topic>.dlq``."""
    return f"{topic}.dlq"


def topic_subject_name(topic: str) -> str:
    """Confluent's TopicNameStrategy for record values: ``<topic>-value``."""
    return f"{topic}-value"
