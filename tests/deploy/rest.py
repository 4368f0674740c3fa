"""What the REST API says about a test DAG's runs, for the fault tests: every task instance with
its state, try and worker; a dump of them for failure messages; bounded waits that end in that
dump instead of hanging ("when a worker is lost, the result is a retry, never a stuck run").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar
from urllib.parse import quote

from stack_airflow import AirflowServer, StackDag

T = TypeVar("T")


@dataclass(frozen=True)
class TaskTry:
    """One task instance as the REST API shows it (its latest try)."""

    day: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    hostname: str
    #: the mapped instance's label (``map_index_template``: a ``publish`` task's file name)
    label: str = ""

    @property
    def worker(self) -> str:
        """The stack component that ran it (``airflow-worker-1``...): the stack's hostname callable
        puts ``-<worker name>`` after the machine's name (kafka_ingest.worker_hostname)."""
        for name in ("worker-1", "worker-2", "scheduler"):
            if self.hostname.endswith(f"-{name}"):
                return f"airflow-{name}"
        return self.hostname

    def __str__(self) -> str:
        index = f"[{self.label or self.map_index}]" if self.map_index >= 0 else ""
        return (
            f"{self.day} {self.task_id}{index}: {self.state} try {self.try_number} on {self.hostname or '-'}"
        )


@cache
def token(server: AirflowServer) -> str:
    """One bearer token per server for the whole session (Airflow's last a day): polls every
    second would otherwise log in on every request."""
    return server.token()


def task_tries(dag: StackDag, days: tuple[str, ...]) -> list[TaskTry]:
    """Every task instance of the runs of ``days`` (mapped ones one per file), in one request
    (``dagRuns/~``: all runs, filtered by logical date)."""
    path = (
        f"/api/v2/dags/{dag.dag_id}/dagRuns/~/taskInstances?limit=1000"
        f"&logical_date_gte={days[0]}T00:00:00Z&logical_date_lte={days[-1]}T00:00:00Z"
    )
    found = [
        TaskTry(
            day=str(ti["logical_date"])[:10],
            run_id=ti["dag_run_id"],
            task_id=ti["task_id"],
            map_index=int(ti["map_index"]),
            state=ti["state"],
            try_number=int(ti["try_number"]),
            hostname=ti.get("hostname") or "",
            label=ti.get("rendered_map_index") or "",
        )
        for ti in dag.server.api("GET", path, token=token(dag.server))["task_instances"]
    ]
    return sorted(found, key=lambda t: (t.day, t.task_id, t.map_index))


def dump(dag: StackDag, days: tuple[str, ...]) -> str:
    """The runs' states and every task instance's state, try and worker, one per line; for a
    failure message, so it never raises."""
    try:
        runs = [f"run {r['logical_date'][:10]} {r['run_type']}: {r['state']}" for r in dag.runs(days)]
        return "\n".join([*runs, *map(str, task_tries(dag, days))])
    except Exception as exc:
        return f"(the task instances could not be read: {exc})"


def earlier_tries(dag: StackDag, ti: TaskTry) -> list[dict[str, Any]]:
    """Every try of one task instance, the earlier ones first (REST ``.../tries``)."""
    tries = dag.tries(ti.run_id, ti.task_id, ti.map_index)
    return sorted(tries, key=lambda t: int(t["try_number"]))


def task_log(dag: StackDag, ti: TaskTry) -> str:
    """The text of the latest try's log, as the UI shows it (REST ``.../logs/{try}``)."""
    path = (
        f"/api/v2/dags/{dag.dag_id}/dagRuns/{quote(ti.run_id, safe='')}/taskInstances/{ti.task_id}"
        f"/logs/{ti.try_number}?map_index={ti.map_index}&full_content=true"
    )
    content = dag.server.api("GET", path, token=token(dag.server)).get("content") or []
    return "\n".join(str(line.get("event", line) if isinstance(line, dict) else line) for line in content)


def wait_for(
    what: str,
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    describe: Callable[[], str],
    poll_s: float = 2.0,
) -> tuple[T, float]:
    """Polls ``check`` until it returns something truthy; that and the seconds it took. Past
    ``timeout_s`` fails naming ``what`` and the bound, with ``describe()`` (the runs' task
    instances) in the message."""
    started = time.monotonic()
    while True:
        result = check()
        if result:
            return result, time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s. Task instances:\n{describe()}")
        time.sleep(poll_s)


def wait_backfill(dag: StackDag, backfill_id: int, days: tuple[str, ...], *, timeout_s: float) -> float:
    """Waits until the backfill is complete (every run finished); the seconds it took."""

    def completed() -> bool:
        found = dag.server.api("GET", f"/api/v2/backfills/{backfill_id}", token=token(dag.server))
        return found["completed_at"] is not None

    _, waited = wait_for(
        f"backfill {backfill_id} of {dag.dag_id} ({days[0]}..{days[-1]}) complete",
        completed,
        timeout_s=timeout_s,
        describe=lambda: dump(dag, days),
        poll_s=3.0,
    )
    return waited
