"""Airflow's own parts failing around the tasks, on the Celery stack (``make test-celery``): a
worker SIGKILLed while its tasks publish, the scheduler SIGKILLed and restarted mid-backfill, and
one day's mapped ``publish`` tasks spread over both workers. Airflow's retry path must absorb each
one, and the topic must end with every valid row once and every bad row once on the DLQ.

The DAG is the production ``build_ingest_dag`` for orders (its retries: 3, 30 s exponential), a
file of the test module's own in the stack's ``test-dags`` bundle (``stack_airflow.stack_dag``) with
its own topic and extracts root; each test backfills days of its own through the REST API
(``POST /api/v2/backfills``, Max Active Runs 3), as the UI does. Every wait is bounded and fails
with the runs' task instances (state, try, worker); the measured waits are printed and kept in
``$STACK_DIR/artifacts/<test>/waits.json`` (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest
from rest import TaskTry, dump, earlier_tries, task_tries, wait_backfill, wait_for
from stack_airflow import AirflowServer, StackDag, stack_dag
from stack_processes import kill_tree, restart, stack_pid

from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.testing.topics import end_offsets, read_topic

pytestmark = [pytest.mark.deploy, pytest.mark.celery, pytest.mark.integration, pytest.mark.timeout(2400)]

WORKERS = ("airflow-worker-1", "airflow-worker-2")
#: Several transactions per file (the DAG's ``batch_size`` Param), so that a worker killed while
#: it publishes leaves committed batches and an open transaction behind, which the retry must
#: resume after and abort.
CONF = {"batch_size": 1_000}
#: 6 files on one day: more than the 4 slots of two workers of concurrency 2.
TWO_WORKERS_DAY = ("2026-03-02",)
TWO_WORKERS_PARTS = 6
TWO_WORKERS_ROWS_PER_PART = 10_000
WORKER_KILLED_DAYS = tuple(f"2026-03-{day:02d}" for day in range(10, 15))
SCHEDULER_KILLED_DAYS = tuple(f"2026-03-{day:02d}" for day in range(20, 25))
#: 3 part files a day; big enough that a file takes seconds to publish on a busy machine.
PARTS = 3
ROWS_PER_PART = 10_000

#: Bounds of the waits (docs/reliability.md, "Orchestrator faults"). Generous: 2 shared cores.
BACKFILL_TIMEOUT_S = 1500
#: From the backfill's creation until a worker is publishing with both its slots taken.
PUBLISHING_TIMEOUT_S = 600
#: ``task_instance_heartbeat_timeout`` (60 s on the stack) + its detection interval (10 s) + the
#: scheduler's loop on a loaded machine.
NOTICED_TIMEOUT_S = 240
#: Noticed, then ``retry_delay`` 30 s doubled with jitter (≤ 60 s for a second try), queued, started.
RETRIED_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DayManifest]:
    """Every test's days, plus an empty complete day for each date the scheduler may start on its
    own once the DAG is unpaused (catchup is off: the latest finished day), so that scheduled run
    ends at once instead of keeping a worker slot busy with its sensor.

    The 3-file days are copies of one generated day (generating costs ~10 s per 100k rows on a
    busy machine); a row's identity on the topic is its day and key, so copies are distinct rows.
    """
    root = tmp_path_factory.mktemp("extracts")
    today = datetime.now(UTC).date()
    for back in range(3):
        folder = root / "orders" / f"dt={today - timedelta(days=back)}"
        folder.mkdir(parents=True)
        (folder / "_SUCCESS").touch()
    seed = int(time.time())
    rows = PARTS * ROWS_PER_PART
    first, *others = (*WORKER_KILLED_DAYS, *SCHEDULER_KILLED_DAYS)
    template = write_day(root, "orders", first, rows=rows, formats=("csv",) * PARTS, seed=seed)
    days = {first: template, **{day: copy_day(template, day) for day in others}}
    for day in TWO_WORKERS_DAY:
        rows = TWO_WORKERS_PARTS * TWO_WORKERS_ROWS_PER_PART
        days[day] = write_day(root, "orders", day, rows=rows, formats=("csv",) * TWO_WORKERS_PARTS, seed=seed)
    return days


def copy_day(manifest: DayManifest, day: str) -> DayManifest:
    """The day's folder copied to ``day`` (``_SUCCESS`` included), and its manifest."""
    source = Path(manifest.files[0]).parent
    target = source.parent / f"dt={day}"
    shutil.copytree(source, target)
    return replace(manifest, date=day, files=[str(target / Path(f).name) for f in manifest.files])


@pytest.fixture(scope="module")
def dag(
    celery_stack: str, airflow_server: AirflowServer, landed: dict[str, DayManifest]
) -> Iterator[StackDag]:
    root = Path(next(iter(landed.values())).files[0]).parents[2]
    with stack_dag(airflow_server, __name__, root) as made:
        made.set_paused(False)
        yield made


@pytest.fixture
def waits(artifacts: Path) -> Iterator[dict[str, float]]:
    """The test's measured waits (seconds), printed and written to ``waits.json``."""
    measured: dict[str, float] = {}
    yield measured
    rounded = {name: round(value, 1) for name, value in measured.items()}
    (artifacts / "waits.json").write_text(json.dumps(rounded, indent=2) + "\n")
    print(f"\nwaits: {rounded}")


def offsets(bootstrap: str, topic: str) -> dict[str, dict[int, int]]:
    """The topic's and its DLQ's high watermarks: where a test's backfill begins to write."""
    return {name: end_offsets(bootstrap, name) for name in (topic, f"{topic}.dlq")}


def landing_problems(
    bootstrap: str, topic: str, manifests: dict[str, DayManifest], since: dict[str, dict[int, int]]
) -> list[str]:
    """What is wrong on the topic and its DLQ for these days (empty when each valid row is on the
    topic once and each rejected row on the DLQ once), read with a read_committed consumer from
    ``since`` (:func:`offsets` before the backfill). A row is (day, key) on the topic (order
    numbers repeat across days) and (file, row) on the DLQ."""
    day_of = {str(Path(f).resolve()): day for day, m in manifests.items() for f in m.files}
    found: Counter[tuple[str, str]] = Counter()
    for record in read_topic(bootstrap, topic, since=since[topic], timeout_s=120):
        day = day_of.get(str(Path(record.header("source.file")).resolve()))
        if day is not None:
            found[(day, record.key_text)] += 1
    expected = Counter({(day, key): 1 for day, m in manifests.items() for key in m.published})
    rejected = Counter(
        {
            (str((Path(m.files[0]).parent / name).resolve()), row): 1
            for m in manifests.values()
            for name, row in m.rejected
        }
    )
    dlq: Counter[tuple[str, int]] = Counter()
    for record in read_topic(bootstrap, f"{topic}.dlq", since=since[f"{topic}.dlq"], timeout_s=120):
        path = str(Path(record.header("source.file")).resolve())
        if path in day_of:
            dlq[(path, record.row)] += 1
    problems = []
    for name, got, want in (("topic", found, expected), ("DLQ", dlq, rejected)):
        missing, extra = want - got, got - want
        if missing or extra:
            problems.append(
                f"{name}: {sum(got.values())} records for {sum(want.values())} rows; "
                f"{len(missing)} rows missing (e.g. {sorted(missing)[:3]}), "
                f"{sum(extra.values())} extra (e.g. {sorted(extra)[:3]})"
            )
    return problems


def run_states(dag: StackDag, days: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(run["logical_date"][:10], run["state"]) for run in dag.runs(days)]


def publishing_worker(
    dag: StackDag, days: tuple[str, ...], bootstrap: str, since: dict[str, dict[int, int]]
) -> tuple[str, list[TaskTry]] | None:
    """A worker with both its slots running task instances of these days, one of them a
    ``publish`` try whose file has committed batches already (so the kill lands mid-file), and
    those task instances; None if there is none yet.

    A file's batches are seen on its DLQ: each batch of these files has some bad rows, committed
    in the same transaction as its records and checkpoint, and the DLQ is small to read. Both
    slots taken, because then the worker holds no message it has not started (Airflow's Celery
    workers take one message per free slot and acknowledge it when the task ends): a task only
    queued on a killed worker would wait for ``task_queued_timeout`` (600 s), not the heartbeat
    timeout this test is about."""
    running: dict[str, list[TaskTry]] = {}
    for ti in task_tries(dag, days):
        if ti.state == "running" and ti.worker in WORKERS:
            running.setdefault(ti.worker, []).append(ti)
    busy = {worker: tis for worker, tis in running.items() if len(tis) >= 2}
    if not any(ti.task_id == "publish" for tis in busy.values() for ti in tis):
        return None
    committed = files_with_batches(bootstrap, dag.topic, since)
    for worker, tis in sorted(busy.items()):
        if any(ti.task_id == "publish" and (ti.day, ti.label) in committed for ti in tis):
            return worker, tis
    return None


def files_with_batches(bootstrap: str, topic: str, since: dict[str, dict[int, int]]) -> set[tuple[str, str]]:
    """(day, file name) of every file with a committed batch since ``since``, from its DLQ records."""
    dlq = f"{topic}.dlq"
    found = set()
    for record in read_topic(bootstrap, dlq, since=since[dlq], timeout_s=60):
        path = PurePosixPath(record.header("source.file"))
        found.add((path.parent.name.removeprefix("dt="), path.name))
    return found


def test_one_days_publish_tasks_run_on_both_workers_and_publish_once(
    dag: StackDag, landed: dict[str, DayManifest], kafka_bootstrap: str, waits: dict[str, float]
) -> None:
    days = TWO_WORKERS_DAY
    since = offsets(kafka_bootstrap, dag.topic)
    backfill_id = dag.backfill(days, reprocess_behavior="none", conf=CONF)
    waits["backfill"] = wait_backfill(dag, backfill_id, days, timeout_s=BACKFILL_TIMEOUT_S)

    report = dump(dag, days)
    assert run_states(dag, days) == [(days[0], "success")], report
    publish = [ti for ti in task_tries(dag, days) if ti.task_id == "publish"]
    assert len(publish) == TWO_WORKERS_PARTS, report
    assert {ti.worker for ti in publish} == set(WORKERS), f"not run on both workers:\n{report}"
    assert all(ti.state == "success" and ti.try_number == 1 for ti in publish), report
    assert landing_problems(kafka_bootstrap, dag.topic, {d: landed[d] for d in days}, since) == []


def test_a_worker_killed_while_publishing_is_retried_on_the_other_and_each_row_lands_once(
    dag: StackDag, landed: dict[str, DayManifest], kafka_bootstrap: str, waits: dict[str, float]
) -> None:
    days = WORKER_KILLED_DAYS
    describe = lambda: dump(dag, days)  # noqa: E731
    since = offsets(kafka_bootstrap, dag.topic)
    backfill_id = dag.backfill(days, reprocess_behavior="none", conf=CONF)
    started = time.monotonic()
    (victim, _), waits["until_publishing"] = wait_for(
        "a worker publishing with both slots busy",
        lambda: publishing_worker(dag, days, kafka_bootstrap, since),
        timeout_s=PUBLISHING_TIMEOUT_S,
        describe=describe,
        poll_s=0.5,
    )
    survivor = next(w for w in WORKERS if w != victim)
    killed = kill_tree(stack_pid(victim))
    killed_at = time.monotonic()
    # What was still running on it once it was dead (a try may have ended just before the kill).
    hit = [ti for ti in task_tries(dag, days) if ti.state == "running" and ti.worker == victim]
    print(f"\nkilled {victim} (pids {killed}) while it ran: {', '.join(map(str, hit))}")
    assert hit, f"nothing was running on {victim} when it was killed:\n{describe()}"
    keys = {(ti.run_id, ti.task_id, ti.map_index) for ti in hit}

    def affected() -> list[TaskTry]:
        return [ti for ti in task_tries(dag, days) if (ti.run_id, ti.task_id, ti.map_index) in keys]

    try:
        _, waits["noticed"] = wait_for(
            f"the scheduler fails the tries of the killed {victim} (no heartbeat)",
            lambda: all(ti.try_number > 1 or ti.state in ("up_for_retry", "failed") for ti in affected()),
            timeout_s=NOTICED_TIMEOUT_S,
            describe=describe,
        )
        _, waits["retried"] = wait_for(
            f"the killed tries retried on {survivor}",
            lambda: all(ti.try_number > 1 and ti.worker == survivor for ti in affected()),
            timeout_s=RETRIED_TIMEOUT_S,
            describe=describe,
        )
        waits["retried"] += waits["noticed"]
        wait_backfill(dag, backfill_id, days, timeout_s=BACKFILL_TIMEOUT_S)
        waits["kill_to_complete"] = time.monotonic() - killed_at
        waits["backfill"] = time.monotonic() - started
    finally:
        # Later tests need two workers again (and this one must come back through the scripts).
        waits["restart_worker"] = restart(victim)

    report = dump(dag, days)
    assert run_states(dag, days) == [(day, "success") for day in days], report
    for ti in affected():
        assert (ti.state, ti.worker) == ("success", survivor), f"{ti}\n{report}"
        tries = earlier_tries(dag, ti)
        assert len(tries) >= 2, f"{ti}: one try only in the REST API: {tries}"
        first = tries[0]
        assert first["state"] in ("failed", "up_for_retry"), f"{ti}: first try {first}"
        assert first["hostname"].endswith(victim.removeprefix("airflow")), f"{ti}: first try {first}"
    assert landing_problems(kafka_bootstrap, dag.topic, {d: landed[d] for d in days}, since) == []


def test_the_scheduler_killed_and_restarted_mid_backfill_finishes_it_and_each_row_lands_once(
    dag: StackDag, landed: dict[str, DayManifest], kafka_bootstrap: str, waits: dict[str, float]
) -> None:
    days = SCHEDULER_KILLED_DAYS
    describe = lambda: dump(dag, days)  # noqa: E731
    since = offsets(kafka_bootstrap, dag.topic)
    backfill_id = dag.backfill(days, reprocess_behavior="none", conf=CONF)
    started = time.monotonic()

    def publishing_and_runs_left() -> list[TaskTry] | None:
        tries = task_tries(dag, days)
        states = [state for _, state in run_states(dag, days)]
        running = [ti for ti in tries if ti.task_id == "publish" and ti.state == "running"]
        return running if running and states.count("success") < len(days) - 1 else None

    hit, waits["until_publishing"] = wait_for(
        "a publish task running with days left to schedule",
        publishing_and_runs_left,
        timeout_s=PUBLISHING_TIMEOUT_S,
        describe=describe,
        poll_s=0.5,
    )
    killed = kill_tree(stack_pid("airflow-scheduler"))
    killed_at = time.monotonic()
    print(f"\nkilled the scheduler (pids {killed}) while running: {', '.join(map(str, hit))}")
    waits["restart_scheduler"] = restart("airflow-scheduler")
    wait_backfill(dag, backfill_id, days, timeout_s=BACKFILL_TIMEOUT_S)
    waits["kill_to_complete"] = time.monotonic() - killed_at
    waits["backfill"] = time.monotonic() - started

    report = dump(dag, days)
    print(report)
    assert run_states(dag, days) == [(day, "success") for day in days], report
    assert landing_problems(kafka_bootstrap, dag.topic, {d: landed[d] for d in days}, since) == []
