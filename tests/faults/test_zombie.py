"""Two attempts of the same work at once: the older one (a zombie) is fenced, the result is exact.

Attempt 1 runs in a child process that freezes itself (SIGSTOP) in the middle of a transaction,
as a paused VM or a task whose heartbeat Airflow lost would. Airflow starts attempt 2, which runs
to the end here; then attempt 1 is continued and tries to finish its transaction. Its producer
must have been fenced by attempt 2's ``init_transactions()``: it fails with ``ProducerFenced``
and nothing of its open transaction ever becomes visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import (
    Attempt,
    Child,
    assert_checkpoints_complete,
    assert_exactly_once,
    assert_reconciles,
    attempt_with_crash_points,
    run_attempt,
    uncommitted_only,
)
from ingest_helpers import DATE, Endpoints

from kafka_ingest.testing.samples import write_day

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS, BATCH = 2000, 200


@pytest.mark.parametrize(
    "freeze",
    [{"stop_in_transaction": 6}, {"stop_mid_produce": [3, 120]}],
    ids=["before_commit", "while_producing"],
)
def test_a_frozen_older_attempt_is_fenced_by_the_newer_one_and_every_row_is_published_once(
    freeze: dict[str, Any], endpoints: Endpoints, topic: str, tmp_path: Path, children: Any
) -> None:
    manifest = write_day(
        tmp_path, "orders", DATE, rows=ROWS, formats=("csv", "jsonl"), bad_ratio=0.04, seed=51
    )
    first = Attempt(endpoints, topic, tuple(manifest.files), "attempt-1")
    zombie = Child(children, attempt_with_crash_points, first, freeze, {})
    zombie.wait_stopped()

    second = run_attempt(Attempt(endpoints, topic, tuple(manifest.files), "attempt-2", try_number=2))
    zombie.resume()

    assert zombie.wait(60) == 1, "the zombie was not stopped"
    kind, error, message = zombie.result()  # type: ignore[misc]
    assert (kind, error) == ("error", "ProducerFenced"), message
    assert "fenced" in message
    assert "a newer attempt of the same work is running" in message
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, second, "attempt-2", manifest)
    assert_checkpoints_complete(endpoints, "orders", topic, manifest)
    hidden = {(r.file_name, r.row) for r in uncommitted_only(endpoints, topic, "attempt-1")}
    attempt_of = {(r.file_name, r.row): r.header("run_id") for r in outcome.records}
    assert {attempt_of[where] for where in hidden} <= {"attempt-2"}, "a zombie's record is visible"
