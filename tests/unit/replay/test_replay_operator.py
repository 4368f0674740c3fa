"""The operator's wiring that needs no stack: which spec and topic, who triggered the run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from kafka_ingest.operators.replay_dlq import ReplayDlqOperator, triggering_user
from kafka_ingest.replay.errors import ReplayInputError


def operator(**kwargs: Any) -> ReplayDlqOperator:
    return ReplayDlqOperator(task_id="replay", **kwargs)


def test_the_dataset_names_the_spec_and_a_blank_topic_means_its_own_plus_the_suffix() -> None:
    assert operator(dataset="payments")._spec().topic == "shopping.payment.processed"
    assert (
        operator(dataset="orders", topic="", topic_suffix=".staging")._spec().topic
        == "shopping.order.created.staging"
    )
    assert operator(dataset="orders", topic="mine")._spec().dlq_topic == "mine.dlq"


def test_an_unknown_dataset_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ReplayInputError, match="Unknown dataset 'refunds': one of orders, payments"):
        operator(dataset="refunds")._spec()


def test_who_is_the_dag_runs_triggering_user() -> None:
    assert triggering_user({"dag_run": SimpleNamespace(triggering_user_name="anna")}) == "anna"  # type: ignore[typeddict-item]
    assert triggering_user({}) == ""  # type: ignore[typeddict-item]
