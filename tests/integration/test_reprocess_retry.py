"""``reprocess`` republishes a file once per attempt of a run: an automatic retry of a
reprocessing task resumes, as any retry does (the DAGs retry every task up to three times); a
cleared run (a backfill of existing runs clears them) or a new run republishes again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from ingest_helpers import RUN, Endpoints, run_job, with_topic

from kafka_ingest.testing.samples import write_day
from kafka_ingest.testing.topics import key_counts, read_topic
from kafka_ingest.topics.orders import ORDERS

pytestmark = pytest.mark.integration


def test_a_retry_of_a_reprocessing_task_publishes_nothing_again(
    endpoints: Endpoints, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    spec = with_topic(ORDERS, unique_name("reprocess"))
    manifest = write_day(tmp_path, "orders", "2026-01-01", rows=20)
    run_job(endpoints, spec, manifest.files)

    reprocessed = run_job(endpoints, spec, manifest.files, reprocess=True)
    retried = run_job(endpoints, spec, manifest.files, run=replace(RUN, try_number=2), reprocess=True)

    assert (reprocessed["published"], reprocessed["skipped"]) == (len(manifest.published), 0)
    assert (retried["published"], retried["skipped"]) == (0, manifest.rows)
    published = key_counts(read_topic(endpoints.bootstrap, spec.topic))
    assert published == Counter({key: 2 for key in manifest.published})


def test_reprocessing_a_cleared_run_or_a_new_run_republishes(
    endpoints: Endpoints, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    spec = with_topic(ORDERS, unique_name("reprocess"))
    manifest = write_day(tmp_path, "orders", "2026-01-01", rows=20)
    run_job(endpoints, spec, manifest.files, reprocess=True)

    cleared = run_job(endpoints, spec, manifest.files, run=replace(RUN, clear_number=1), reprocess=True)
    other = run_job(endpoints, spec, manifest.files, run=replace(RUN, run_id="it_run_2"), reprocess=True)

    assert cleared["published"] == other["published"] == len(manifest.published)
    published = key_counts(read_topic(endpoints.bootstrap, spec.topic))
    assert published == Counter({key: 3 for key in manifest.published})
