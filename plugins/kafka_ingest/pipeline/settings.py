"""The knobs of one run: the operator's arguments, minus the Airflow wiring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Producer

#: transactional id -> a new (not yet initialised) producer
ProducerFactory = Callable[[str], Producer]


@dataclass(frozen=True)
class JobSettings:
    """What a run is asked to do.

    ``validate_only`` is a dry run: read, validate and encode every row, publish nothing, read no
    checkpoint (the DAG's trigger-form Param calls it ``dry_run``).
    """

    extract_date: str
    batch_size: int = 50_000
    reprocess: bool = False
    validate_only: bool = False
    max_dlq_ratio: float | None = 0.1
    max_dlq_rows: int | None = None
    max_attempts: int = 3
    timeout_s: float = 60.0
    #: False encodes with fastavro record by record (the reference path; same bytes, slower).
    columnar_encoder: bool = True
