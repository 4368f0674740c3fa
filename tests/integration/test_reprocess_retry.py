"""``reprocess`` republishes a file once per run: a retry of a reprocessing run resumes, as any
retry does (the DAGs retry every task up to three times)."""

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


def test_a_retry_of_a_reprocessing_run_publishes_nothing_again_and_a_new_run_does(
    endpoints: Endpoints, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    spec = with_topic(ORDERS, unique_name("reprocess"))
    manifest = write_day(tmp_path, "orders", "2026-01-01", rows=20)
    run_job(endpoints, spec, manifest.files)

    reprocessed = run_job(endpoints, spec, manifest.files, reprocess=True)
    retried = run_job(endpoints, spec, manifest.files, run=replace(RUN, try_number=2), reprocess=True)
    assert key_counts(read_topic(endpoints.bootstrap, spec.topic)) == Counter(
        {key: 2 for key in manifest.published}
    )
    again = run_job(endpoints, spec, manifest.files, run=replace(RUN, run_id="it_run_2"), reprocess=True)

    assert (reprocessed["published"], reprocessed["skipped"]) == (len(manifest.published), 0)
    assert (retried["published"], retried["skipped"]) == (0, manifest.rows)
    assert again["published"] == len(manifest.published)
