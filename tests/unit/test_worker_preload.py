"""The worker preload imports what a task needs once, and never changes what a task does."""

from __future__ import annotations

import logging
import sys

import pytest

from kafka_ingest import worker_preload


def test_every_module_a_task_needs_is_imported_by_the_preload() -> None:
    assert worker_preload.preload() == []
    assert {name for name in worker_preload.MODULES if name not in sys.modules} == set()


def test_a_module_that_fails_to_import_is_logged_and_named_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=worker_preload.__name__):
        failed = worker_preload.preload(("json", "kafka_ingest.no_such_module"))
    assert failed == ["kafka_ingest.no_such_module"]
    assert "could not preload kafka_ingest.no_such_module" in caplog.text


def test_the_celery_config_is_airflows_default_unchanged() -> None:
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    assert worker_preload.CELERY_CONFIG is DEFAULT_CELERY_CONFIG


def test_any_other_attribute_is_missing() -> None:
    with pytest.raises(AttributeError):
        _ = worker_preload.NO_SUCH_SETTING
