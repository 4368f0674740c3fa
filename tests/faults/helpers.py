"""What the fault tests share: attempts (in this process or in a child that can die), crash points,
and the exactly-once check a downstream read_committed consumer would make.

An *attempt* is one try of the task: ``build_job`` + ``IngestionJob.run`` exactly as the operator
wires them, with the attempt's ``run_id`` in every record's headers and DLQ envelope, so the
checks can tell which attempt committed what. Children come from a fork server that has imported
the product once (``FORKSERVER_PRELOAD``): a child starts in milliseconds instead of the seconds
pandas and Great Expectations take to import, which is what makes dozens of SIGKILL runs fit in
the suite's time budget.

Reading back reuses ``tests/integration/ingest_helpers.py`` (``read_topic`` read_committed over
every partition, ``by_source``, ``decode_values`` with confluent-kafka's ``AvroDeserializer``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from ingest_helpers import (
    DATE,
    EXPECTED_RECORD,
    Endpoints,
    Record,
    by_source,
    decode_values,
    read_topic,
    source_rows,
)

from kafka_ingest.batches import RunInfo
from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.pipeline.summary import summarize
from kafka_ingest.pipeline.wiring import build_job
from kafka_ingest.publish.checkpoints import (
    Checkpoint,
    CheckpointReadTimeout,
    CheckpointStore,
    checkpoint_key,
)
from kafka_ingest.publish.records import BatchResult, BatchToPublish
from kafka_ingest.publish.transactions import PublishError, TransactionalPublisher
from kafka_ingest.runtime.metrics import NullSink, StatsSink, TopicMetrics
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import DayManifest
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS

SPECS = {"orders": ORDERS, "payments": PAYMENTS}
FORKSERVER_PRELOAD = ["helpers", "ingest_driver", "kafka_ingest.validate.validator", "great_expectations"]

#: Set by the fault stack: the broker's direct bootstrap, which no proxy fault touches.
DIRECT_BOOTSTRAP_ENV = "KAFKA_INGEST_FAULTS_DIRECT_BOOTSTRAP"
#: Small client timeouts so a fault surfaces in seconds (the first attempt of a fault test uses
#: them with ``timeout_s=3``); docs/reliability.md lists the defaults.
FAST_TIMEOUTS = {
    "transaction.timeout.ms": 5_000,
    "delivery.timeout.ms": 2_000,
    "socket.timeout.ms": 1_500,
}
#: ``JobSettings.timeout_s`` (init, commit, abort, close) of a first attempt meeting a fault.
FAST_TIMEOUT_S = 3.0
#: What a failed first attempt may raise: all retryable (the operator maps them to AirflowException).
RETRYABLE = (PublishError, CheckpointReadTimeout)
#: init (3 s), then per batch try (3 of them) delivery (2 s) + abort (3 s), then close (3 s): 21 s
#: at the very worst, with room for a slow CI machine.
FAILS_WITHIN_S = 35.0


# --------------------------------------------------------------------------- attempts


@dataclass(frozen=True)
class Attempt:
    """One try of the task (picklable, so a child process can run it)."""

    endpoints: Endpoints
    topic: str
    files: tuple[str, ...]
    run_id: str
    dataset: str = "orders"
    batch_size: int = 200
    timeout_s: float = 60.0
    try_number: int = 1
    reprocess: bool = False
    producer: dict[str, Any] = field(default_factory=dict)
    registry: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> TopicSpec:
        return spec_for(self.dataset, self.topic)

    def run_info(self) -> RunInfo:
        return RunInfo("faults", self.run_id, "publish", -1, self.try_number)


def spec_for(dataset: str, topic: str) -> TopicSpec:
    return replace(SPECS[dataset], topic=topic)


def run_attempt(attempt: Attempt, sink: StatsSink | None = None) -> dict[str, Any]:
    """Run the attempt here; the operator's XCom summary (or the exception the operator maps)."""
    settings = JobSettings(
        extract_date=DATE,
        batch_size=attempt.batch_size,
        max_dlq_ratio=None,
        timeout_s=attempt.timeout_s,
        reprocess=attempt.reprocess,
    )
    # On the direct listener: provisioning is set-up, not part of the faulted path.
    bootstrap = os.environ.get(DIRECT_BOOTSTRAP_ENV, attempt.endpoints.bootstrap)
    provision_topics(bootstrap, attempt.spec, checkpoint_topic=attempt.endpoints.checkpoint_topic)
    job, schema_id = build_job(
        attempt.spec,
        settings,
        kafka_config={"bootstrap.servers": attempt.endpoints.bootstrap},
        registry_client=SchemaRegistryClient(
            {"url": attempt.endpoints.registry_url, "timeout": DEFAULT_TIMEOUT_S, **attempt.registry}
        ),
        checkpoint_topic=attempt.endpoints.checkpoint_topic,
        auto_register=True,
        metrics=TopicMetrics(attempt.topic, sink or NullSink()),
        run=attempt.run_info(),
        producer_overrides=attempt.producer,
    )
    return summarize(
        job.run(list(attempt.files)), topic=attempt.topic, schema_id=schema_id, validate_only=False
    )


def fast_first_attempt(endpoints: Endpoints, topic: str, manifest: DayManifest) -> tuple[Any, float]:
    """Attempt 1 of ``manifest``'s files with the fast timeouts: ``(summary or exception, seconds)``."""
    first = Attempt(
        endpoints, topic, tuple(manifest.files), "attempt-1", timeout_s=FAST_TIMEOUT_S, producer=FAST_TIMEOUTS
    )
    return timed(lambda: run_attempt(first))


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """``(result or the exception raised, seconds)``: a fault test asserts both."""
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started


# --------------------------------------------------------------------------- child processes


class Child:
    """An attempt in a child process of the fork server; it can be killed, stopped, continued."""

    def __init__(self, context: Any, target: Callable[..., Any], *args: Any) -> None:
        receive, send = context.Pipe(duplex=False)
        self._receive = receive
        self.process = context.Process(target=_child_main, args=(send, target, *args), daemon=True)
        self.process.start()
        send.close()
        self._result: tuple[Any, ...] | None = None

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def wait(self, timeout_s: float = 120.0) -> int:
        """The exit code (``-9`` after SIGKILL); fails if the child is still running."""
        self.process.join(timeout_s)
        if self.process.exitcode is None:
            state = _state(self.pid)  # "T": stopped, e.g. by a crash point
            self.kill()
            raise AssertionError(f"attempt child {self.pid} still running after {timeout_s:.0f}s ({state})")
        return int(self.process.exitcode)

    def result(self) -> tuple[Any, ...] | None:
        """``("ok", summary)``, ``("error", type name, message)``, or None if it died first."""
        if self._result is None and self._receive.poll(0):
            try:
                self._result = self._receive.recv()
            except EOFError:
                return None
        return self._result

    def wait_stopped(self, timeout_s: float = 120.0) -> None:
        """Until the child stopped itself (a ``stop_*`` crash point: SIGSTOP)."""
        deadline = time.monotonic() + timeout_s
        while _state(self.pid) != "T":
            if not self.process.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"attempt child {self.pid} never stopped (exit {self.process.exitcode})")
            time.sleep(0.05)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.process.is_alive():
            os.kill(self.pid, signal.SIGKILL)
            self.process.join(10)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _child_main(send: Connection, target: Callable[..., Any], *args: Any) -> None:
    try:
        send.send(("ok", target(*args)))
    except BaseException as exc:
        send.send(("error", type(exc).__name__, str(exc)))
        raise SystemExit(1) from None


def fork_context() -> Any:
    """The fork server context; its first child starts the server, which imports the product."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)
    return context


def stop_fork_server() -> None:
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and hasattr(server, "_stop"):
        server._stop()


def crash_run(args: dict[str, Any]) -> Any:
    """Child target: ``ingest_driver.main`` (its crash points) plus :func:`install_crash_points`."""
    import ingest_driver

    install_crash_points(args)
    return ingest_driver.main(args)


def attempt_with_crash_points(attempt: Attempt, points: dict[str, Any], env: dict[str, str]) -> Any:
    """Child target: :func:`run_attempt` with crash points and extra environment."""
    import tempfile

    os.environ.update(env)
    tempfile.tempdir = None  # TMPDIR may have changed since the fork server started
    install_crash_points(points)
    return run_attempt(attempt)


def attempt_recording_temp_dirs(attempt: Attempt, env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Child target: :func:`run_attempt` with extra environment; also returns every folder the
    run created with ``tempfile.mkdtemp`` (Great Expectations makes, and removes, one)."""
    import tempfile

    os.environ.update(env)
    tempfile.tempdir = None
    # The task's TMPDIR is its only temp folder (a container with one tmpfs): Python would
    # otherwise quietly fall back to /tmp when it cannot write a probe file in TMPDIR.
    tempfile._candidate_tempdir_list = lambda: [env["TMPDIR"]]  # type: ignore[attr-defined]
    created: list[str] = []
    mkdtemp = tempfile.mkdtemp

    def recording(*args: Any, **kwargs: Any) -> str:
        created.append(mkdtemp(*args, **kwargs))
        return created[-1]

    tempfile.mkdtemp = recording  # type: ignore[assignment]
    return run_attempt(attempt), created


# --------------------------------------------------------------------------- crash points


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def stop() -> None:
    """SIGSTOP ourselves: a paused VM, a long GC, a hung NFS read — the zombie of tomorrow."""
    os.kill(os.getpid(), signal.SIGSTOP)


def install_crash_points(points: dict[str, Any]) -> None:
    """Crash points beyond ``ingest_driver``'s (``kill_after_commits``, ``kill_in_transaction``).

    They hook public seams only: ``TransactionalPublisher.publish``, ``CheckpointStore.load`` and
    the producer the job builds (``wiring.Producer``), so they survive changes to the publisher's
    internals. Counting is over *data* transactions (a batch with records or DLQ records); a
    file's last transaction, which only marks its checkpoint complete, is a *completion*. Files
    count from 0.

    * ``kill_before_checkpoint_read: f`` — file f's producer is initialised (older attempts
      fenced), its checkpoint not yet read, nothing of it produced;
    * ``kill_at_transaction_start: k`` — k data transactions committed, the next one not begun;
    * ``kill_mid_produce: [k, m]`` — k committed, m records of the next one handed to the
      producer (queued, maybe partly sent), no flush, no commit;
    * ``kill_after_complete: f`` — right after file f's completion committed;
    * ``stop_in_transaction: k`` / ``stop_mid_produce: [k, m]`` — as the kills (the first with
      the open transaction flushed to the broker), but SIGSTOP: the process can be continued
      later, a zombie.
    """
    import kafka_ingest.pipeline.wiring

    publish, load = TransactionalPublisher.publish, CheckpointStore.load
    state = {"commits": 0, "completes": 0, "loads": 0, "produced": 0}

    def counting_publish(
        self: TransactionalPublisher, batch: BatchToPublish, *a: Any, **k: Any
    ) -> BatchResult:
        data = bool(batch.records or batch.dlq)
        if data and points.get("kill_at_transaction_start") == state["commits"]:
            die()
        result = publish(self, batch, *a, **k)
        if not data:
            state["completes"] += 1
            if points.get("kill_after_complete") == state["completes"] - 1:
                die()
        return result

    def counting_load(self: CheckpointStore, key: str) -> Any:
        if points.get("kill_before_checkpoint_read") == state["loads"]:
            die()
        state["loads"] += 1
        return load(self, key)

    fired: set[str] = set()  # a crash point is one event: a retry of its batch must not meet it again

    def fires(key: str, at: Any) -> bool:
        expected = points.get(key)
        if key in fired or (list(expected) if isinstance(expected, (list, tuple)) else expected) != at:
            return False
        fired.add(key)
        return True

    class CrashingProducer(Producer):
        def begin_transaction(self, *args: Any) -> Any:
            state["produced"] = 0
            return super().begin_transaction(*args)

        def produce(self, *args: Any, **kwargs: Any) -> Any:
            for key, action in (("kill_mid_produce", die), ("stop_mid_produce", stop)):
                if fires(key, [state["commits"], state["produced"]]):
                    action()
            state["produced"] += 1
            return super().produce(*args, **kwargs)

        def commit_transaction(self, *args: Any) -> Any:
            data = state["produced"] > 1  # records and/or DLQ records, and the checkpoint
            if data and fires("stop_in_transaction", state["commits"]):
                self.flush(30)
                stop()
            result = super().commit_transaction(*args)
            state["commits"] += data
            return result

    TransactionalPublisher.publish = counting_publish  # type: ignore[method-assign]
    CheckpointStore.load = counting_load  # type: ignore[method-assign]
    kafka_ingest.pipeline.wiring.Producer = CrashingProducer  # type: ignore[misc]


def driver_args(attempt: Attempt, **crash: Any) -> dict[str, Any]:
    """``ingest_driver.py``'s arguments for ``attempt``."""
    return {
        "bootstrap": attempt.endpoints.bootstrap,
        "registry_url": attempt.endpoints.registry_url,
        "checkpoint_topic": attempt.endpoints.checkpoint_topic,
        "dataset": attempt.dataset,
        "topic": attempt.topic,
        "files": list(attempt.files),
        "date": DATE,
        "batch_size": attempt.batch_size,
        "run_id": attempt.run_id,
        **crash,
    }


def after_commits(count: int, action: Callable[[], None], monkeypatch: Any) -> list[int]:
    """Run ``action`` (in this process) once ``count`` data transactions committed; returns the
    list the wrapper appends each committed data batch's size to."""
    publish = TransactionalPublisher.publish
    committed: list[int] = []

    def wrapper(self: TransactionalPublisher, batch: BatchToPublish, *a: Any, **k: Any) -> BatchResult:
        result = publish(self, batch, *a, **k)
        if batch.records or batch.dlq:
            committed.append(len(batch.records) + len(batch.dlq))
            if len(committed) == count:
                action()
        return result

    monkeypatch.setattr(TransactionalPublisher, "publish", wrapper)
    return committed


# --------------------------------------------------------------------------- checking the result


@dataclass
class Outcome:
    """The topic and its DLQ as a read_committed consumer sees them, by attempt."""

    records: list[Record]
    dlq: list[Record]
    records_by_run: Counter[str]
    dlq_by_run: Counter[str]


def assert_exactly_once(endpoints: Endpoints, dataset: str, topic: str, manifest: DayManifest) -> Outcome:
    """Every valid row exactly once with the right value, every rejected row once on the DLQ."""
    spec = spec_for(dataset, topic)
    records = read_topic(endpoints.bootstrap, topic)
    found = by_source(records)  # fails on a row seen twice
    keys = Counter(r.key.decode() for r in records if r.key is not None)
    assert [k for k, n in keys.items() if n > 1] == [], "a key was published twice"
    assert sorted(keys) == sorted(manifest.published), "published keys differ from the manifest"
    assert len(found) == len(manifest.published)
    sources = {
        (Path(f).name, number): row
        for f in manifest.files
        for number, row in enumerate(source_rows(f), start=1)
    }
    for record, value in zip(records, decode_values(endpoints.registry_url, topic, records), strict=True):
        expected = EXPECTED_RECORD[dataset](sources[(record.file_name, record.row)])
        assert value == expected, f"row {record.row} has another value"
    dlq_records = read_topic(endpoints.bootstrap, spec.dlq_topic)
    dlq = by_source(dlq_records)
    assert set(dlq) == set(manifest.rejected), "the DLQ is not the manifest's rejected rows"
    for where, record in dlq.items():
        assert manifest.rejected[where] in json.loads(record.value)["failed_rules"]
    return Outcome(
        records,
        dlq_records,
        Counter(r.header("run_id") for r in records),
        Counter(json.loads(r.value)["run"]["run_id"] for r in dlq_records),
    )


def assert_reconciles(outcome: Outcome, final: dict[str, Any], final_run: str, manifest: DayManifest) -> None:
    """The last attempt read every row, and skipped exactly what earlier attempts committed."""
    earlier = sum(n for run, n in outcome.records_by_run.items() if run != final_run) + sum(
        n for run, n in outcome.dlq_by_run.items() if run != final_run
    )
    assert final["rows_read"] == manifest.rows
    assert final["published"] + final["dlq"] + final["skipped"] == final["rows_read"]
    assert final["published"] == outcome.records_by_run[final_run]
    assert final["dlq"] == outcome.dlq_by_run[final_run]
    assert final["skipped"] == earlier, (final, dict(outcome.records_by_run), dict(outcome.dlq_by_run))


def assert_checkpoints_complete(
    endpoints: Endpoints, dataset: str, topic: str, manifest: DayManifest
) -> None:
    """Each file's last committed checkpoint is complete and counts what the manifest expects."""
    latest = {
        r.key: Checkpoint.from_json(r.value)
        for r in read_topic(endpoints.bootstrap, endpoints.checkpoint_topic)
    }
    for path in manifest.files:
        name = Path(path).name
        checkpoint = latest.get(checkpoint_key(topic, dataset, DATE, name).encode())
        assert checkpoint is not None, f"{name}: no checkpoint"
        assert checkpoint.complete, f"{name}: {checkpoint}"
        rejected = sum(1 for file, _ in manifest.rejected if file == name)
        rows = len(source_rows(path))
        assert (checkpoint.rows_done, checkpoint.published, checkpoint.dlq) == (
            rows,
            rows - rejected,
            rejected,
        )


def assert_nothing_published(endpoints: Endpoints, dataset: str, topic: str) -> None:
    spec = spec_for(dataset, topic)
    assert read_topic(endpoints.bootstrap, topic) == []
    assert read_topic(endpoints.bootstrap, spec.dlq_topic) == []


def uncommitted_only(endpoints: Endpoints, topic: str, run_id: str) -> list[Record]:
    """Records of ``run_id`` a read_uncommitted consumer sees and a read_committed one does not:
    what aborted (or never committed) transactions wrote."""
    committed = {(r.partition, r.offset) for r in read_topic(endpoints.bootstrap, topic)}
    everything = read_topic(endpoints.bootstrap, topic, isolation="read_uncommitted")
    return [
        r
        for r in everything
        if (r.partition, r.offset) not in committed and r.headers.get("run_id") == run_id.encode()
    ]


# --------------------------------------------------------------------------- the operator in a child


def operator_in_task_process(env: dict[str, str], kwargs: dict[str, Any], run: RunInfo) -> dict[str, Any]:
    """Child target: what Airflow's task runner does before ``execute`` as far as metrics go
    (``stats.initialize`` with the factory ``[metrics]`` selects), then the orders operator.

    ``env`` carries the task's configuration (``AIRFLOW__METRICS__*``, ``AIRFLOW_CONN_*``).
    Returns the XCom summary and which StatsD backend the task ended up with.
    """
    os.environ.update(env)
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability.metrics import stats_utils
    from ingest_helpers import task_context

    from kafka_ingest.operators.datasets import OrdersToKafkaOperator

    stats.initialize(
        factory=stats_utils.get_stats_factory(),
        export_legacy_names=conf.getboolean("metrics", "legacy_names_on"),
    )
    backend = stats._get_backend()
    summary = OrdersToKafkaOperator(task_id="publish", **kwargs).execute(task_context(run))
    client = getattr(backend, "statsd", None)
    return {"summary": summary, "backend": type(backend).__name__, "address": getattr(client, "_addr", None)}


def set_connections(
    monkeypatch: Any, bootstrap: str, registry_url: str, registry_options: dict[str, Any] | None = None
) -> None:
    """The Airflow connections ``faults_kafka`` and ``faults_registry``, as environment variables."""
    kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap}}
    registry = {"conn_type": "schema_registry", "host": registry_url, "extra": registry_options or {}}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTS_KAFKA", json.dumps(kafka))
    monkeypatch.setenv("AIRFLOW_CONN_FAULTS_REGISTRY", json.dumps(registry))


def provision_operator_topics(kwargs: dict[str, Any]) -> None:
    """The topics an orders operator with ``kwargs`` writes to, created as ``topics ensure`` would
    (the brokers never create them); on the direct listener: set-up, not the faulted path."""
    from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC

    provision_topics(
        os.environ[DIRECT_BOOTSTRAP_ENV],
        spec_for("orders", kwargs.get("topic") or SPECS["orders"].topic),
        checkpoint_topic=kwargs.get("checkpoint_topic") or DEFAULT_CHECKPOINT_TOPIC,
    )


def execute_operator(run_id: str, *, try_number: int = 1, **kwargs: Any) -> Any:
    """One try of ``OrdersToKafkaOperator`` (connections from :func:`set_connections`; its topics
    provisioned)."""
    from ingest_helpers import task_context

    from kafka_ingest.operators.datasets import OrdersToKafkaOperator

    options = {
        "extract_date": DATE,
        "kafka_config_id": "faults_kafka",
        "schema_registry_conn_id": "faults_registry",
        "batch_size": 200,
        "max_dlq_ratio": None,
        **kwargs,
    }
    provision_operator_topics(options)
    task = OrdersToKafkaOperator(task_id="publish", **options)
    return task.execute(task_context(RunInfo("faults", run_id, "publish", -1, try_number)))
