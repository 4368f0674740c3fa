"""The operator's run, without Airflow or services: its job is built and run with the allocators
tuned for ingestion (allocation.py), from before the job's clients are made, and not after."""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

import pytest

from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.runtime.allocation import GC_YOUNG_THRESHOLD


def _tuned() -> bool:
    return gc.get_freeze_count() > 0 and gc.get_threshold()[0] == GC_YOUNG_THRESHOLD


class _Job:
    def __init__(self, seen: dict[str, bool]) -> None:
        self.seen = seen

    def run(self, files: list[Any], day_files: list[Any]) -> list[Any]:
        self.seen["run"] = _tuned()
        return []


def test_the_job_is_built_and_run_with_the_allocators_tuned_and_restored_after(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from kafka_ingest.hooks.kafka import TransactionalProducerHook
    from kafka_ingest.hooks.schema_registry import SchemaRegistryHook
    from kafka_ingest.pipeline import wiring

    seen: dict[str, bool] = {}

    def build_job(*args: Any, **kwargs: Any) -> tuple[_Job, int]:
        seen["build"] = _tuned()
        return _Job(seen), 1

    monkeypatch.setattr(wiring, "build_job", build_job)
    monkeypatch.setattr(TransactionalProducerHook, "client_config", lambda self: {})
    monkeypatch.setattr(SchemaRegistryHook, "get_client", lambda self: None)
    operator = OrdersToKafkaOperator(task_id="publish", extract_path=str(tmp_path / "none" / "*.csv"))
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="publish", map_index=-1, try_number=1)
    before = gc.get_threshold()

    summary = operator.execute({"ti": ti})  # type: ignore[arg-type]

    assert seen == {"build": True, "run": True}
    assert summary["files"] == 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
