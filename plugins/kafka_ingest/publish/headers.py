"""Every Kafka header this product writes: the names, and the one function per kind of record.

Consumers route and trace by these names (README "DLQ records"), so each is spelled once, here. No
code reads a header back: whatever a later step needs to know about a record (its source row,
for one) travels beside it in :class:`~kafka_ingest.publish.records.OutgoingMessage`.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kafka_ingest.batches import Headers, RejectedRow, RunInfo, SourceInfo

EVENT_TYPE = "event_type"
CORRELATION_ID = "correlation_id"
SOURCE_FILE = "source.file"
SOURCE_ROW = "source.row"
DAG_ID = "dag_id"
RUN_ID = "run_id"
TASK_ID = "task_id"
DLQ_STAGE = "dlq.stage"
DLQ_ERROR_TYPE = "dlq.error_type"
#: on a record a DLQ replay published: the DLQ record (topic/partition/offset) it replays
REPLAY_OF = "dlq.replay_of"


def record_headers(event_type: str, source: SourceInfo, run: RunInfo) -> Headers:
    """The headers every published record of one file carries, in front of its own."""
    return [
        (EVENT_TYPE, event_type.encode()),
        (SOURCE_FILE, source.file.encode()),
        (DAG_ID, run.dag_id.encode()),
        (RUN_ID, run.run_id.encode()),
        (TASK_ID, run.task_id.encode()),
    ]


def row_header_columns(
    topic: str, source: SourceInfo, file_name: str, rows: np.ndarray
) -> dict[str, list[bytes]]:
    """Each record's own headers as columns: its source row and its correlation id.

    The correlation id is deterministic (the same row has the same id on every run): a hash of
    topic, date and file name, then the row number. Built column-wise by Arrow, as bytes: a Python
    f-string, ``encode()`` and numpy scalar per row would cost more than encoding the record.
    """
    row_text = pc.cast(pa.array(rows), pa.string())
    prefix = hashlib.sha1(f"{topic}|{source.date}|{file_name}".encode(), usedforsecurity=False).hexdigest()[
        :16
    ]
    return {
        SOURCE_ROW: pc.cast(row_text, pa.binary()).to_pylist(),
        CORRELATION_ID: pc.cast(
            pc.binary_join_element_wise(f"{prefix}-", row_text, ""), pa.binary()
        ).to_pylist(),
    }


def correlation_prefix(topic: str, date: str, file_name: str) -> str:
    """What every correlation id of one file starts with; the row number follows after a ``-``."""
    return hashlib.sha1(f"{topic}|{date}|{file_name}".encode(), usedforsecurity=False).hexdigest()[:16]


def dlq_headers(rejected: RejectedRow, source: SourceInfo) -> Headers:
    """Headers that let consumers route DLQ records without parsing the envelope."""
    return [
        (DLQ_STAGE, str(rejected.stage).encode()),
        (DLQ_ERROR_TYPE, rejected.error_type.encode()),
        (SOURCE_FILE, source.file.encode()),
        (SOURCE_ROW, str(rejected.row).encode()),
    ]
