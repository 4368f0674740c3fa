"""The values that flow between the pipeline's stages, and the run and file they belong to.

A reader yields :class:`ReadBatch` objects; every stage that turns a row away describes it as a
:class:`RejectedRow`, which the DLQ module turns into an envelope. Row numbers are 1-based data
record numbers within a file (the CSV header is not a record; a quoted field spanning lines is
still one record), so they stay stable across retries and are what checkpoints count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from kafka_ingest.specs import Stage

#: Kafka record headers as confluent-kafka takes them.
Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class RejectedRow:
    """A row that will not be published, and why.

    ``original`` is the row as read (column -> text, or the raw line when it could not be split
    into columns); it is unmasked here and masked by the DLQ module before it leaves the process.
    """

    row: int
    stage: Stage
    error_type: str
    message: str
    rules: tuple[str, ...] = ()
    original: Mapping[str, Any] | str | None = None


@dataclass
class ReadBatch:
    """One bounded slice of an extract file.

    :param file: the file's path or URL, as given to the reader.
    :param table: the rows that could be parsed, one string column per spec column (nested
        columns as JSON text; a missing optional column as nulls).
    :param row_numbers: int64 array, the record number of each row of ``table``.
    :param rejected: read-stage rejects whose record numbers fall within this batch.
    :param last_row: the highest record number this batch accounts for; every record up to it is
        either in ``table`` or in ``rejected``. This is the position a checkpoint stores.
    """

    file: str
    table: pa.Table
    row_numbers: np.ndarray
    rejected: list[RejectedRow] = field(default_factory=list)
    last_row: int = 0

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.rejected)


@dataclass(frozen=True)
class RunInfo:
    """Which run read a row: the DLQ's ``run`` block and the ``dag/run/task`` headers."""

    dag_id: str = ""
    run_id: str = ""
    task_id: str = ""
    map_index: int = -1
    try_number: int = 0
    #: how many times the run was cleared: tells a retry (same) from a rerun (higher)
    clear_number: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
        }


@dataclass(frozen=True)
class SourceInfo:
    """Where a batch came from: the DLQ's ``source`` block."""

    dataset: str
    date: str
    file: str
