"""decide_resume: the exactly-once decision for one file, every branch, without a broker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kafka_ingest.batches import RunInfo
from kafka_ingest.pipeline.resume import ExtractChangedError, Resume, Skip, decide_resume
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.publish.checkpoints import Checkpoint

KEY = "shop.order/orders/2026-01-15/part-0001.csv"
SAME, OTHER = "sha256:aaa", "sha256:bbb"
SETTINGS = JobSettings(extract_date="2026-01-15")
RUN = RunInfo(run_id="scheduled__2026-01-15", try_number=2, clear_number=0)


def checkpoint(*, rows_done: int, complete: bool = False, **changes: object) -> Checkpoint:
    previous = Checkpoint(
        key=KEY, fingerprint=SAME, rows_done=rows_done, complete=complete, published=rows_done
    )
    return replace(previous, **{"run_id": RUN.run_id, "try_number": 1, **changes})  # type: ignore[arg-type]


def test_a_file_never_started_is_published_from_row_one() -> None:
    assert decide_resume(None, SAME, SETTINGS, RUN) == Resume(0, "fresh")


def test_a_partly_published_file_resumes_after_its_last_committed_row_on_top_of_its_counts() -> None:
    previous = checkpoint(rows_done=500)
    assert decide_resume(previous, SAME, SETTINGS, RUN) == Resume(500, "resume", previous)


def test_a_completely_published_unchanged_file_is_skipped() -> None:
    previous = checkpoint(rows_done=900, complete=True)
    assert decide_resume(previous, SAME, SETTINGS, RUN) == Skip(previous)


@pytest.mark.parametrize("complete", [False, True], ids=["partial", "complete"])
def test_a_file_changed_since_part_of_it_was_published_fails_naming_file_and_fingerprints(
    complete: bool,
) -> None:
    previous = checkpoint(rows_done=500, complete=complete)
    with pytest.raises(
        ExtractChangedError, match=rf"part-0001.csv changed since rows 1-500 .*{SAME}.*{OTHER}"
    ):
        decide_resume(previous, OTHER, SETTINGS, RUN, file="/x/part-0001.csv")


@pytest.mark.parametrize("complete", [False, True], ids=["partial", "complete"])
@pytest.mark.parametrize("fingerprint", [SAME, OTHER], ids=["unchanged", "changed"])
def test_reprocess_republishes_from_row_one_whatever_was_published_and_whatever_changed(
    complete: bool, fingerprint: str
) -> None:
    previous = checkpoint(rows_done=500, complete=complete)
    reprocess = replace(SETTINGS, reprocess=True)
    assert decide_resume(previous, fingerprint, reprocess, RUN) == Resume(0, "reprocess")


def test_a_retry_within_a_reprocessing_attempt_resumes_that_reprocessing() -> None:
    previous = checkpoint(rows_done=300, reprocess=True)  # written by try 1 of this run's reprocessing
    reprocess = replace(SETTINGS, reprocess=True)
    assert decide_resume(previous, SAME, reprocess, RUN) == Resume(300, "resume", previous)


def test_a_reprocessing_attempt_that_completed_is_not_repeated_by_its_own_retry() -> None:
    previous = checkpoint(rows_done=900, complete=True, reprocess=True)
    assert decide_resume(previous, SAME, replace(SETTINGS, reprocess=True), RUN) == Skip(previous)


def test_clearing_the_run_starts_reprocessing_over() -> None:
    previous = checkpoint(rows_done=300, reprocess=True)  # clear_number 0: before the clear
    cleared = replace(RUN, clear_number=1)
    assert decide_resume(previous, SAME, replace(SETTINGS, reprocess=True), cleared) == Resume(0, "reprocess")


def test_another_runs_reprocessing_checkpoint_does_not_count_as_this_attempts() -> None:
    previous = checkpoint(rows_done=300, reprocess=True, run_id="manual__other")
    assert decide_resume(previous, SAME, replace(SETTINGS, reprocess=True), RUN) == Resume(0, "reprocess")


@pytest.mark.parametrize(
    "previous",
    [None, checkpoint(rows_done=500), checkpoint(rows_done=900, complete=True)],
    ids=["fresh", "partial", "complete"],
)
def test_a_dry_run_judges_the_whole_file_and_never_fails_on_a_changed_one(
    previous: Checkpoint | None,
) -> None:
    validate_only = replace(SETTINGS, validate_only=True)
    assert decide_resume(previous, OTHER, validate_only, RUN) == Resume(0, "validate only")
