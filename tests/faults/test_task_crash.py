"""The task process is SIGKILLed at a point chosen by a seed; Airflow's retry must finish the job.

Each seeded run lands a two-file orders day (CSV + JSON Lines, ~4 % bad rows, data of its own
seed), publishes it in 200-row transactions from a child process that dies at the chosen point,
then runs the retry (attempt 2) in this process. A read_committed consumer must then see every
valid row once with its value, every rejected row once on the DLQ, nothing of a transaction the
kill left open, and attempt 2 must have skipped exactly the rows attempt 1 committed.

Crash points (``ingest_driver`` and ``helpers.install_crash_points``):

* before — the file's producer initialised but its checkpoint not read; or a transaction about to
  begin;
* inside — the transaction's records flushed to the broker, commit not sent; or records still
  being produced;
* after — right after a data transaction or a file's completion committed.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    Attempt,
    Child,
    assert_checkpoints_complete,
    assert_exactly_once,
    assert_reconciles,
    crash_run,
    driver_args,
    run_attempt,
    timed,
    uncommitted_only,
)
from ingest_helpers import DATE, Endpoints

from kafka_ingest.testing.samples import write_day

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEEDS = range(21)
ROWS, BATCH, FILES = 2000, 200, 2
DATA_TRANSACTIONS = ROWS // BATCH  # 10, five per file
ALL_TRANSACTIONS = DATA_TRANSACTIONS + FILES  # and one completion per file
#: Well under transaction.timeout.ms (60 s): a retry must not wait for attempt 1's open transaction
#: to expire on the broker (it fences it instead).
RETRY_WITHIN_S = 40.0


def crash_point(seed: int) -> tuple[str, dict[str, Any]]:
    """(kind, crash point arguments) for a seed; kinds rotate so each gets a third of the seeds."""
    rng = random.Random(seed)
    kind = ("before", "inside", "after")[seed % 3]
    variant = rng.randrange(2)
    if kind == "before":
        if variant:
            return kind, {"kill_before_checkpoint_read": rng.randrange(FILES)}
        return kind, {"kill_at_transaction_start": rng.randrange(DATA_TRANSACTIONS)}
    if kind == "inside":
        if variant:
            return kind, {"kill_in_transaction": rng.randrange(ALL_TRANSACTIONS)}
        return kind, {"kill_mid_produce": [rng.randrange(DATA_TRANSACTIONS), rng.randrange(1, BATCH)]}
    if variant:
        return kind, {"kill_after_commits": rng.randrange(1, DATA_TRANSACTIONS + 1)}
    return kind, {"kill_after_complete": rng.randrange(FILES)}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_retry_after_a_sigkill_at_a_seeded_point_publishes_every_valid_row_exactly_once(
    seed: int, endpoints: Endpoints, topic: str, tmp_path: Path, children: Any
) -> None:
    manifest = write_day(
        tmp_path, "orders", DATE, rows=ROWS, formats=("csv", "jsonl"), bad_ratio=0.04, seed=seed
    )
    first = Attempt(endpoints, topic, tuple(manifest.files), run_id=f"attempt-1-seed-{seed}")
    kind, point = crash_point(seed)

    killed = Child(children, crash_run, driver_args(first, **point))
    assert killed.wait() == -signal.SIGKILL, f"{point}: {killed.result()}"

    retry = Attempt(endpoints, topic, tuple(manifest.files), run_id=f"attempt-2-seed-{seed}", try_number=2)
    summary, seconds = timed(lambda: run_attempt(retry))

    assert isinstance(summary, dict), repr(summary)
    assert seconds < RETRY_WITHIN_S, f"the retry took {seconds:.0f}s: held up by attempt 1's leftovers?"

    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, retry.run_id, manifest)
    assert_checkpoints_complete(endpoints, "orders", topic, manifest)
    if "kill_in_transaction" in point:  # the open transaction reached the broker, then was aborted
        aborted = {(r.file_name, r.row) for r in uncommitted_only(endpoints, topic, first.run_id)}
        by_attempt = {(r.file_name, r.row): r.header("run_id") for r in outcome.records}
        assert {by_attempt[where] for where in aborted} <= {retry.run_id}
    print(f"seed {seed}: {kind} {point}: attempt 1 committed {dict(outcome.records_by_run)}")
