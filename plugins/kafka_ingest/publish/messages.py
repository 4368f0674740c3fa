"""The one place that turns a batch's outcome into messages: records, DLQ records, their headers.

Records are built column-wise (:class:`~kafka_ingest.publish.records.RecordColumns`): keys and
per-row header values come from Arrow as whole columns and stay columns up to ``produce()``.
Every message carries its source row, which is how a record refused for its size finds its way
back to the row it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kafka_ingest.batches import RejectedRow, RunInfo, SourceInfo
from kafka_ingest.publish.dlq import DlqEnvelopeBuilder, dlq_key
from kafka_ingest.publish.headers import dlq_headers, record_headers, row_header_columns
from kafka_ingest.publish.records import OutgoingMessage, RecordColumns
from kafka_ingest.specs import Stage, TopicSpec


class MessageBuilder:
    """Builds the messages of one file's batches for one spec and run."""

    def __init__(self, spec: TopicSpec, run: RunInfo, source: SourceInfo, file_name: str) -> None:
        self._spec, self._source, self._file_name = spec, source, file_name
        self._dlq = DlqEnvelopeBuilder(spec, run)
        self._common = record_headers(spec.event_type, source, run)

    def records(
        self, table: pa.Table, rows: np.ndarray, positions: np.ndarray, values: Sequence[bytes]
    ) -> RecordColumns:
        """The records of the rows at ``positions`` of ``table`` (source ``rows``), with ``values``."""
        numbers = rows[positions]
        keys = table.column(self._spec.key_field).take(pa.array(positions))
        return RecordColumns(
            self._spec.topic,
            list(values),
            pc.cast(keys, pa.binary()).to_pylist(),
            numbers.tolist(),
            self._common,
            row_header_columns(self._spec.topic, self._source, self._file_name, numbers),
        )

    def dlq(self, rejected: RejectedRow) -> OutgoingMessage:
        """A rejected row's DLQ record: the masked, bounded envelope, its key and headers."""
        return OutgoingMessage(
            self._spec.dlq_topic,
            self._dlq.build(rejected, self._source),
            dlq_key(rejected, self._spec),
            dlq_headers(rejected, self._source),
            row=rejected.row,
        )

    def too_large(
        self, message: OutgoingMessage, why: str, original: dict[str, Any] | None
    ) -> OutgoingMessage:
        """The DLQ record of a record refused for its size: the row as read, like any reject's."""
        rejected = RejectedRow(
            row=message.row,
            stage=Stage.PRODUCE,
            error_type="RecordTooLarge",
            message=f"{why}: the encoded record is {len(message.value)} bytes",
            original=original or {self._spec.key_field: (message.key or b"").decode()},
        )
        return self.dlq(rejected)


def rows_as_read(table: pa.Table, positions: Sequence[int]) -> list[dict[str, Any]]:
    """The rows at ``positions`` as read, for DLQ records: one ``take`` for all of them."""
    return cast(list[dict[str, Any]], table.take(pa.array(positions, pa.int64())).to_pylist())
