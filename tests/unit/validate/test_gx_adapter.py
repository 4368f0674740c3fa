"""The GX adapter: every GX internal it turns exists in the GX we pin (else this file fails), a
missing one is logged and takes GX's plain path; lighter_gx_run: a GX run without the batch
fingerprint, each expectation's configuration built once, each metric id hashed once per content,
the same results, and GX as it was once the last overlapping run has ended."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest
from great_expectations.core.id_dict import IDDict
from great_expectations.execution_engine import pandas_execution_engine as engine
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.registry import get_expectation_impl

from kafka_ingest.testing.samples import order_row
from kafka_ingest.testing.topic_tests import frame_of
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.validate import gx_adapter
from kafka_ingest.validate import validator as validation
from kafka_ingest.validate.gx_adapter import lighter_gx_run, missing_knobs
from kafka_ingest.validate.validator import BatchValidator

GX_CONFIGURATION = Expectation.__dict__["configuration"]
GX_THRESHOLD = engine.HASH_THRESHOLD
GX_TO_ID = IDDict.__dict__["to_id"]


def expectation() -> Any:
    in_set: Any = get_expectation_impl("expect_column_values_to_be_in_set")
    return in_set(column="_flag", value_set=[True])


def order(index: int, **changes: Any) -> dict[str, Any]:
    row = dict(order_row(index, random.Random(index)))
    return {**row, "items": json.dumps(row["items"]), **changes}


def gx_as_it_was() -> bool:
    return (
        Expectation.__dict__["configuration"] is GX_CONFIGURATION
        and engine.HASH_THRESHOLD == GX_THRESHOLD
        and IDDict.__dict__["to_id"] is GX_TO_ID
    )


def test_every_gx_internal_the_adapter_turns_exists_in_the_installed_gx() -> None:
    """Fails after a GX upgrade that renamed or removed one: the speed-up would be gone."""
    assert missing_knobs() == []


def test_a_missing_gx_internal_is_logged_and_validation_takes_gx_s_plain_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [order(1), order(2, order_number="bad key")]
    expected = BatchValidator(ORDERS).validate(ORDERS.prepare(frame_of(ORDERS, rows)))
    knobs = {name: ("great_expectations", "NoSuchThing") for name in gx_adapter.KNOBS}
    monkeypatch.setattr(gx_adapter, "KNOBS", knobs)
    monkeypatch.setattr(gx_adapter, "_checked", None)

    with caplog.at_level("WARNING", logger=gx_adapter.__name__):
        outcome = BatchValidator(ORDERS).validate(ORDERS.prepare(frame_of(ORDERS, rows)))

    warned = [
        r.args[0] for r in caplog.records if r.name == gx_adapter.__name__ and isinstance(r.args, tuple)
    ]
    assert sorted(warned) == sorted(knobs)
    assert outcome.valid.tolist() == expected.valid.tolist() == [True, False]
    assert outcome.failed_rules == expected.failed_rules
    assert gx_as_it_was()


def test_inside_a_run_an_expectation_keeps_its_first_configuration() -> None:
    checked = expectation()
    assert checked.configuration is not checked.configuration  # GX builds a new one per access

    with lighter_gx_run():
        kept = checked.configuration
        assert checked.configuration is kept
        assert expectation().configuration is not kept  # kept per object, not per type
        assert engine.HASH_THRESHOLD == 0

    assert kept == checked.configuration
    assert checked.configuration is not checked.configuration
    assert gx_as_it_was()


def test_gx_is_restored_when_the_run_raises() -> None:
    with pytest.raises(RuntimeError, match="expectation failed to run"), lighter_gx_run():
        raise RuntimeError("expectation failed to run")
    assert gx_as_it_was()


def test_overlapping_runs_on_two_threads_restore_gx_only_when_the_last_ends() -> None:
    first_inside, second_inside, first_done = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def first() -> None:
        with lighter_gx_run():
            first_inside.set()
            second_inside.wait(10)
        first_done.set()

    def second() -> None:
        first_inside.wait(10)
        with lighter_gx_run():
            second_inside.set()
            first_done.wait(10)
            checked = expectation()
            seen["kept after the first ended"] = checked.configuration is checked.configuration

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert seen == {"kept after the first ended": True}
    assert gx_as_it_was()


def test_a_thread_outside_any_run_gets_gx_s_own_configuration_meanwhile() -> None:
    inside, checked_elsewhere = threading.Event(), threading.Event()

    def run() -> None:
        with lighter_gx_run():
            inside.set()
            checked_elsewhere.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    inside.wait(10)
    try:
        checked = expectation()
        assert checked.configuration is not checked.configuration
    finally:
        checked_elsewhere.set()
        thread.join(10)
    assert gx_as_it_was()


def test_a_validation_run_builds_far_fewer_configurations(monkeypatch: pytest.MonkeyPatch) -> None:
    """GX makes a run's expectation objects afresh (~150 for the orders suite), then reads their
    configurations ~1,170 times: kept, each object's is built once."""
    lighter, as_gx_runs_it = counted_in_one_run_each_way(count_configuration_builds, monkeypatch)

    assert 0 < 4 * lighter < as_gx_runs_it, (lighter, as_gx_runs_it)


def test_inside_a_run_a_metric_id_is_hashed_once_per_content(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = count_id_computations(monkeypatch)
    domain = {"batch_id": "orders_0-orders_0", "column": "_flag", "row_condition": None, "table": None}
    expected = GX_TO_ID(IDDict(domain))
    hashed.clear()

    with lighter_gx_run():
        ids = [IDDict(domain).to_id() for _ in range(5)]
        changed = IDDict(domain)
        changed["column"] = "_other"
        other = changed.to_id()

    assert ids == [expected] * 5
    assert other == GX_TO_ID(IDDict({**domain, "column": "_other"}))
    assert len(hashed) == 2  # once for each content
    assert IDDict(domain).to_id() == expected  # outside the run: GX (here counted) each time
    assert len(hashed) == 3


@pytest.mark.parametrize(
    "values",
    [[1, True, "1", None], [0.0, -0.0, 0], [[True], (True,)]],
    ids=["int, bool, str and None", "floats", "lists"],
)
def test_values_that_look_alike_keep_the_ids_gx_gives_them(values: list[Any]) -> None:
    """An id is kept by content with each value's type, and only for str, int, bool and None:
    ``1 == True == 1.0`` and ``0.0 == -0.0`` in Python, but not in GX's JSON of them."""
    dicts = [IDDict({"batch_id": "b", "value": value}) for value in values]
    with lighter_gx_run():
        inside = [(d.to_id(), d.to_id()) for d in dicts]
    assert inside == [(GX_TO_ID(d), GX_TO_ID(d)) for d in dicts]


def test_a_validation_run_hashes_far_fewer_metric_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The orders suite names ~1,150 metric configurations per run; most are the same few domain
    dicts (the value kwargs holding lists, ~60 a run, still go to GX each time)."""
    lighter, as_gx_runs_it = counted_in_one_run_each_way(count_id_computations, monkeypatch)

    assert 0 < 5 * lighter < as_gx_runs_it, (lighter, as_gx_runs_it)


@pytest.mark.parametrize("lighter", [True, False], ids=["lighter", "as GX runs it"])
def test_the_outcome_is_the_same_as_gx_alone(lighter: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [order(index) for index in range(300)]
    for position in range(0, 300, 7):
        rows[position]["currency"] = "usd"
    for position in range(0, 300, 11):
        rows[position]["created_at"] = "2026-03-01T12:00:00"
    rows[5]["status"] = None
    frame = ORDERS.prepare(frame_of(ORDERS, rows))
    if not lighter:
        monkeypatch.setattr(validation, "lighter_gx_run", nullcontext)

    outcome = BatchValidator(ORDERS).validate(frame)

    expected = {
        position: tuple(
            rule
            for rule, failed in (
                ("status_allowed", position == 5),
                ("currency_allowed", position % 7 == 0),
                ("created_at_with_offset", position % 11 == 0),
            )
            if failed
        )
        for position in range(300)
    }
    assert outcome.failed_rules == {position: rules for position, rules in expected.items() if rules}


def counted_in_one_run_each_way(
    count: Callable[[pytest.MonkeyPatch], list[int]], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    """What ``count`` counts in one validation run of two orders made lighter, then in one run as
    GX runs it (after a first run, which builds the suite and its context)."""
    validator = BatchValidator(ORDERS)
    frame = ORDERS.prepare(frame_of(ORDERS, [order(1), order(2, currency="GBP")]))
    validator.validate(frame)
    counted = count(monkeypatch)

    validator.validate(frame)
    lighter = len(counted)
    with monkeypatch.context() as plain:
        plain.setattr(validation, "lighter_gx_run", nullcontext)
        validator.validate(frame)
    return lighter, len(counted) - lighter


def count_configuration_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count GX's configuration builds: a run's kept configurations are built by this property too."""
    builds: list[int] = []
    build: Callable[[Any], Any] = GX_CONFIGURATION.fget

    def counted(self: Any) -> Any:
        builds.append(1)
        return build(self)

    monkeypatch.setattr(Expectation, "configuration", property(counted))
    return builds


def count_id_computations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count GX's metric-id hashes (two keys or more: GX's own shortcut below that is not counted)."""
    hashed: list[int] = []

    def counted(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        if len(self) >= 2:
            hashed.append(1)
        return GX_TO_ID(self, id_keys, id_ignore_keys)

    monkeypatch.setattr(IDDict, "to_id", counted)
    return hashed
