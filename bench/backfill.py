"""``backfill-local`` and ``backfill-celery``: the days of the backfill data set through the stack's
running scheduler, created as a user creates a backfill (``POST /api/v2/backfills``).

The DAG is the production shape (``build_ingest_dag`` over ``OrdersToKafkaOperator``: sensor, part
file listing, one mapped ``publish`` task per file, report), written into the stack's ``test-dags``
bundle with a unique ``dag_id`` and topic, pointed at the benchmark's extracts root, and given an
``end_date`` so that unpausing it starts no scheduled run of today. The clock starts just before the
backfill is created and stops at the ``end_date`` of its last run (the metadata DB's timestamps,
on the same machine's clock), so the poll interval does not round the result.

While the backfill runs, a thread samples ``/proc`` every :data:`SAMPLE_INTERVAL_S` for task
processes (Airflow's task runner titles itself ``airflow worker -- <task instance id>``, on
LocalExecutor and Celery alike) and keeps each one's ``VmHWM``, the kernel's high-water mark of its
resident set; matched by id with the ``publish`` task instances from the REST API, that is the
peak RSS of each ``publish`` task. A sample only misses growth in the last interval before exit.

The stack's executor is switched by ``scripts/stack up`` with ``EXECUTOR=local|celery`` (the
Airflow processes restart; Kafka, the registry and PostgreSQL keep running) and ``bench/run.py``
puts back the executor it found.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from stack_airflow import AirflowServer, remove_dag, wait_registered  # noqa: E402

SAMPLE_INTERVAL_S = 0.2
POLL_INTERVAL_S = 2.0
#: A whole backfill may take this long on a busy 2-core machine before it counts as stuck.
BACKFILL_TIMEOUT_S = float(os.environ.get("BENCH_BACKFILL_TIMEOUT_S", 3600))
#: How many days run at once (the backfill's Max Active Runs; docs/benchmarks.md says why).
MAX_ACTIVE_RUNS = int(os.environ.get("BENCH_BACKFILL_MAX_ACTIVE_RUNS", 10))
TERMINAL = {"success", "failed"}
_TITLE = re.compile(rb"airflow worker -- ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")

DAG_TEMPLATE = '''"""An airflow DAG of the backfill benchmark (bench/backfill.py); removed when it ends."""
from datetime import datetime

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import OrdersToKafkaOperator

dag = build_ingest_dag(
    OrdersToKafkaOperator,
    dag_id={dag_id!r},
    topic={topic!r},
    extracts_root={extracts_root!r},
    start_date=datetime.fromisoformat({start!r}),
    end_date=datetime.fromisoformat({end!r}),
)
'''


# -- pure helpers (tests/unit/bench) ------------------------------------------------------------


def task_instance_id(cmdline: bytes) -> str | None:
    """The task instance id in a task runner's process title, else None."""
    found = _TITLE.search(cmdline)
    return found.group(1).decode() if found else None


def vm_hwm_kib(status: str) -> int | None:
    """``VmHWM`` (peak resident set, KiB) from a ``/proc/<pid>/status`` text."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def parse_time(value: str | None) -> float | None:
    """An API timestamp (ISO 8601 with offset, ``Z`` allowed) as epoch seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def backfill_seconds(started: float, runs: list[dict[str, Any]]) -> float:
    """From ``started`` (epoch, just before the backfill was created) to the last run's end."""
    ends = [parse_time(run.get("end_date")) for run in runs]
    if not runs or any(end is None for end in ends):
        raise ValueError("a run has not ended")
    return max(e for e in ends if e is not None) - started


def where_time_goes(task_instances: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task id: count, median and total seconds running, median wait from scheduled to queued
    (the scheduler) and from queued to started (the executor and task start-up)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for ti in task_instances:
        by_task.setdefault(ti["task_id"], []).append(ti)
    out: dict[str, dict[str, float]] = {}
    for task_id, tis in by_task.items():
        running = [float(ti["duration"]) for ti in tis if ti.get("duration") is not None]
        to_queue = _gaps(tis, "scheduled_when", "queued_when")
        to_start = _gaps(tis, "queued_when", "start_date")
        out[task_id] = {
            "count": len(tis),
            "median_run_s": round(statistics.median(running), 2) if running else 0.0,
            "total_run_s": round(sum(running), 1),
            "median_scheduled_to_queued_s": round(statistics.median(to_queue), 2) if to_queue else 0.0,
            "median_queued_to_start_s": round(statistics.median(to_start), 2) if to_start else 0.0,
        }
    return out


def _gaps(tis: list[dict[str, Any]], first: str, then: str) -> list[float]:
    gaps = []
    for ti in tis:
        a, b = parse_time(ti.get(first)), parse_time(ti.get(then))
        if a is not None and b is not None:
            gaps.append(b - a)
    return gaps


def stat_cpu_seconds(stat: str, ticks: int) -> tuple[int, float]:
    """``(ppid, CPU seconds)`` from a ``/proc/<pid>/stat`` line: its own user and system time plus
    that of its children it has waited for (a task process's, once its worker reaped it)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14-17
    return int(fields[1]), sum(int(fields[i]) for i in range(11, 15)) / ticks


def tree_cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds of ``roots`` and all their descendants (live, or exited and reaped)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parent[int(entry.name)], cpu[int(entry.name)] = stat_cpu_seconds(
                    Path(entry.path, "stat").read_text(), ticks
                )
            except (OSError, ValueError, IndexError):
                continue
    wanted, total = set(roots), 0.0
    for pid in cpu:
        walk = pid
        while walk > 1 and walk not in wanted:
            walk = parent.get(walk, 0)
        if walk in wanted:
            total += cpu[pid]
    return total


def airflow_pids() -> list[int]:
    """The stack's Airflow processes (api-server, scheduler, dag-processor, triggerer, workers)."""
    run = Path(os.environ["STACK_DIR"]) / "run"
    return [int(p.read_text()) for p in run.glob("airflow-*.pid") if p.read_text().strip().isdigit()]


# -- the stack ----------------------------------------------------------------------------------


def current_executor() -> str:
    """The running stack's executor (``$STACK_DIR/run/executor``, written by ``scripts/stack up``)."""
    marker = Path(os.environ["STACK_DIR"]) / "run" / "executor"
    return marker.read_text().strip() if marker.exists() else ""


def ensure_executor(executor: str, log: Path) -> float:
    """``scripts/stack up`` with ``EXECUTOR=executor`` unless the stack runs it already; seconds."""
    if current_executor() == executor:
        return 0.0
    started = time.monotonic()
    print(f"bench: switching the stack to EXECUTOR={executor} (log {log})", flush=True)
    env = {**os.environ, "EXECUTOR": executor}
    env.pop("AIRFLOW__CORE__EXECUTOR", None)  # stack-env.sh derives it from EXECUTOR
    with log.open("a") as out:
        done = subprocess.run(
            [str(REPO / "scripts" / "stack"), "up"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    if done.returncode != 0 or current_executor() != executor:
        raise RuntimeError(
            f"scripts/stack up with EXECUTOR={executor} failed (exit {done.returncode}); see {log}"
        )
    return time.monotonic() - started


class RssSampler(threading.Thread):
    """Keeps the highest ``VmHWM`` seen for every task runner process, by task instance id."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib: dict[str, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_INTERVAL_S):
            self.sample()

    def sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                ti_id = task_instance_id(Path(entry.path, "cmdline").read_bytes())
                if ti_id is None:
                    continue
                hwm = vm_hwm_kib(Path(entry.path, "status").read_text())
            except OSError:  # the process ended between the listing and the read
                continue
            if hwm is not None and hwm > self.peak_kib.get(ti_id, 0):
                self.peak_kib[ti_id] = hwm

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def provision(topic: str) -> None:
    """The brokers create no topics: the DAG's topic, its DLQ and the checkpoint topic are
    provisioned as ``topics ensure`` would (the DAG uses the operators' checkpoint topic)."""
    from dataclasses import replace

    from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
    from kafka_ingest.testing.provision import provision_topics
    from kafka_ingest.topics.orders import ORDERS

    provision_topics(
        os.environ["KAFKA_BOOTSTRAP"], replace(ORDERS, topic=topic), checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC
    )


def measure(variant: str, dates: list[str], extracts_root: str, out: Path) -> dict[str, Any]:
    """One backfill of ``dates`` on the executor the variant names; a result dict for bench/run.py."""
    executor = variant.removeprefix("backfill-")
    switch_s = ensure_executor(executor, out / f"stack-{executor}.log")
    server = AirflowServer.from_env()
    deadline = time.monotonic() + 600
    while not server.healthy():
        if time.monotonic() > deadline:
            return {"error": "the stack's Airflow is not healthy after 600 s (make status)"}
        time.sleep(3)
    suffix = uuid.uuid4().hex[:8]
    dag_id, topic = f"bench_backfill_{executor}_{suffix}", f"bench.{variant}.{suffix}"
    path = Path(os.environ["AIRFLOW_TEST_DAGS"]) / f"{dag_id}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    last = date.fromisoformat(dates[-1]) + timedelta(days=1)
    path.write_text(
        DAG_TEMPLATE.format(
            dag_id=dag_id, topic=topic, extracts_root=extracts_root, start=dates[0], end=str(last)
        )
    )
    provision(topic)
    result: dict[str, Any] = {"topic": topic, "dlq_topic": f"{topic}.dlq", "executor": executor}
    result["switch_seconds"] = round(switch_s, 1)
    sampler = RssSampler()
    try:
        _patient(lambda: wait_registered(server, dag_id, timeout_s=600))
        token = _patient(server.token)
        _patient(lambda: server.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token=token))
        body = {
            "dag_id": dag_id,
            "from_date": f"{dates[0]}T00:00:00Z",
            "to_date": f"{dates[-1]}T00:00:00Z",
            "max_active_runs": MAX_ACTIVE_RUNS,
            "reprocess_behavior": "none",
            "dag_run_conf": {},
        }
        sampler.start()
        load = os.getloadavg()[0]
        cpu_before = tree_cpu_seconds(airflow_pids())
        started = time.time()
        backfill = server.api("POST", "/api/v2/backfills", body, token=token)
        runs = _wait_runs(server, dag_id, len(dates))
        polled = time.time() - started
        cpu = tree_cpu_seconds(airflow_pids()) - cpu_before
        sampler.stop()
        tis = _task_instances(server, dag_id, runs)
        publish = [ti for ti in tis if ti["task_id"] == "publish"]
        rss = [sampler.peak_kib[ti["id"]] / 1024 for ti in publish if ti["id"] in sampler.peak_kib]
        result.update(
            seconds=backfill_seconds(started, runs),
            polled_seconds=round(polled, 1),
            cpu_seconds=round(cpu, 1),
            load1_start=load,
            backfill_id=backfill["id"],
            max_active_runs=MAX_ACTIVE_RUNS,
            runs=len(runs),
            state="success" if all(run["state"] == "success" for run in runs) else _states(runs),
            publish_tasks=len(publish),
            publish_tasks_sampled=len(rss),
            publish_rss_mb_max=round(max(rss), 1) if rss else None,
            publish_rss_mb_median=round(statistics.median(rss), 1) if rss else None,
            publish_hosts=sorted({str(ti.get("hostname")) for ti in publish}),
            tries=sum(int(ti.get("try_number") or 1) for ti in tis) - len(tis),
            where_time_goes=where_time_goes(tis),
        )
        return result
    finally:
        sampler.stop()
        path.unlink(missing_ok=True)
        remove_dag(server, dag_id)


def _wait_runs(server: AirflowServer, dag_id: str, expected: int) -> list[dict[str, Any]]:
    """The backfill's runs once all ``expected`` of them are finished (success or failed)."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    token, token_at = server.token(), time.monotonic()
    runs: list[dict[str, Any]] = []
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{dag_id}: backfill not done after {BACKFILL_TIMEOUT_S:.0f}s: {_states(runs)}"
            )
        try:
            if time.monotonic() - token_at > 600:
                token, token_at = server.token(), time.monotonic()
            runs = server.api(
                "GET", f"/api/v2/dags/{dag_id}/dagRuns?run_type=backfill&limit=100", token=token
            )["dag_runs"]
        except (OSError, AssertionError) as exc:  # a busy api-server: a poll missed, not the backfill
            print(f"bench: polling {dag_id}: {exc}; again", file=sys.stderr, flush=True)
            time.sleep(POLL_INTERVAL_S)
            continue
        if len(runs) >= expected and all(run["state"] in TERMINAL for run in runs):
            return runs
        time.sleep(POLL_INTERVAL_S)


def _task_instances(server: AirflowServer, dag_id: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from urllib.parse import quote

    token = _patient(server.token)
    found: list[dict[str, Any]] = []
    for run in runs:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances?limit=1000"
        found.extend(_patient(functools.partial(server.api, "GET", path, token=token))["task_instances"])
    return found


def _patient(call: Callable[[], Any], attempts: int = 10) -> Any:
    """``call()``, again after a timeout or a refused connection (a busy api-server)."""
    for attempt in range(attempts):
        try:
            return call()
        except OSError as exc:
            if attempt == attempts - 1:
                raise
            print(f"bench: {exc}; again", file=sys.stderr, flush=True)
            time.sleep(5)
    raise AssertionError("unreachable")


def _states(runs: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["state"]] = counts.get(run["state"], 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
