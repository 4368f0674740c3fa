"""Files no row of which can be trusted fail the task, naming the file (and line), publishing nothing.

Each file runs through the orders operator (connections from ``AIRFLOW_CONN_*``, as in a task).
A file that cannot be read is not a row problem, so nothing goes to the DLQ: the task fails with
an ``AirflowException`` (retried: the upstream may land the file again) whose message names the
file and what is wrong with it, and neither topic receives anything — the day's duplicate scan
reads every file before the first batch is published.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from ingest_helpers import DATE, Endpoints, read_topic, task_context, with_topic

from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.read import FIELD_SIZE_LIMIT
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.topics.orders import ORDERS

from .helpers import COLUMNS, Rows, csv_record, header

pytestmark = pytest.mark.integration

ORDER = COLUMNS["orders"]
ROWS = Rows("orders", "HFAIL")
VALID = b"".join(csv_record(ORDER, ROWS()) for _ in range(3))


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _invalid_utf8_parquet() -> bytes:
    """A valid order whose ``user_id`` string column holds bytes that are not UTF-8."""
    row = ROWS()
    offsets = pa.py_buffer(np.array([0, 4], dtype=np.int32).tobytes())
    user_id = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"caf\xe9")])
    columns = {c: pa.array([row[c] if isinstance(row[c], str) else "[]"]) for c in ORDER}
    return _parquet(pa.table({**columns, "user_id": user_id}))


#: (case, file name, bytes, what the failure message must say besides the file's path)
CASES: list[tuple[str, str, bytes, str]] = [
    (
        "missing_required_column",
        "part-0001.csv",
        b"order_number,user_id\r\n" + VALID,
        "header lacks required column(s) status, items",
    ),
    (
        "repeated_column",
        "part-0001.csv",
        header([*ORDER, "currency"]) + VALID,
        "header repeats column(s) currency",
    ),
    (
        "bad_quoting_in_header",
        "part-0001.csv",
        b'order_number,"user_id"x,status\r\n' + VALID,
        "line 1: unreadable header",
    ),
    (
        "header_over_the_limit",
        "part-0001.csv",
        b"order_number," + b"c" * (FIELD_SIZE_LIMIT + 5) + b"\r\n" + VALID,
        "header line longer than the field size limit",
    ),
    (
        "invalid_utf8_column_name",
        "part-0001.csv",
        header(ORDER).replace(b"status", b"st\xe4tus") + VALID,
        "header lacks required column(s) status",
    ),
    (
        "truncated_gzip",
        "part-0001.csv.gz",
        gzip.compress(header(ORDER) + VALID * 200)[:-40],
        "cannot be read: EOFError",
    ),
    ("not_gzip_at_all", "part-0001.csv.gz", header(ORDER) + VALID, "cannot be read: BadGzipFile"),
    ("corrupt_parquet", "part-0001.parquet", b"PAR1" + bytes(range(256)) * 4 + b"PAR1", "cannot be read"),
    (
        "parquet_invalid_utf8",
        "part-0001.parquet",
        _invalid_utf8_parquet(),
        "column user_id (string) has no text form",
    ),
    (
        "parquet_missing_column",
        "part-0001.parquet",
        _parquet(pa.table({"order_number": ["A"]})),
        "lacks required column(s) user_id",
    ),
]


@pytest.mark.parametrize(("name", "data", "reason"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_an_unreadable_file_fails_the_task_naming_it_and_publishes_nothing(
    endpoints: Endpoints,
    module_topic: Callable[[str], str],
    tmp_path: Path,
    name: str,
    data: bytes,
    reason: str,
) -> None:
    folder = tmp_path / "orders" / f"dt={DATE}"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    topic = module_topic("orders")
    provision_topics(
        endpoints.bootstrap, with_topic(ORDERS, topic), checkpoint_topic=endpoints.checkpoint_topic
    )
    operator = OrdersToKafkaOperator(
        task_id="publish",
        extract_path=str(folder),
        extract_date=DATE,
        topic=topic,
        checkpoint_topic=endpoints.checkpoint_topic,
    )

    with pytest.raises(AirflowException) as failure:
        operator.execute(task_context())  # type: ignore[arg-type]

    assert not isinstance(failure.value, AirflowFailException), "a re-landed file may read: retry"
    message = str(failure.value)
    assert str(folder / name) in message
    assert reason in message
    assert read_topic(endpoints.bootstrap, topic) == []
    assert read_topic(endpoints.bootstrap, f"{topic}.dlq") == []
