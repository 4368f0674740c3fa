"""Where a file's publishing starts: the exactly-once decision, as a pure function.

The checkpoint is read only after the file's producer fenced older attempts, so ``previous`` is the
last committed word on the file. From it, the file's fingerprint now, the run's settings and which
run this is, :func:`decide_resume` says: skip the file (published completely and unchanged),
resume after some row, or fail because the file changed under a partial or complete publish.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka_ingest.batches import RunInfo
from kafka_ingest.errors import PermanentError
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.publish.checkpoints import Checkpoint


class ExtractChangedError(PermanentError):
    """A file changed after part of it was published; mixing versions would corrupt the topic."""


@dataclass(frozen=True)
class Skip:
    """The file was published completely and has not changed: nothing to do."""

    previous: Checkpoint


@dataclass(frozen=True)
class Resume:
    """Publish the rows after ``after`` (0: the whole file); ``base`` holds the counts so far.

    ``why`` is one of ``fresh``, ``validate only``, ``reprocess`` or ``resume``.
    """

    after: int
    why: str
    base: Checkpoint | None = None


def decide_resume(
    previous: Checkpoint | None, fingerprint: str, settings: JobSettings, run: RunInfo, *, file: str = ""
) -> Skip | Resume:
    """Skip, resume after a row, or raise :class:`ExtractChangedError` (``file`` names it).

    Reprocessing starts from row 1 once per attempt of the run: an automatic retry of a task that
    is already reprocessing the file resumes from that reprocessing's checkpoint, as any retry
    does (else it would publish again what the failed try had committed). Clearing the run or task
    (a backfill of existing runs does) is a new attempt and starts over. A dry run
    (``validate_only``) judges the whole file and never reads a checkpoint.
    """
    if settings.validate_only:
        return Resume(0, "validate only")
    if previous is None:
        return Resume(0, "fresh")
    if settings.reprocess and not continues_reprocessing(previous, run):
        return Resume(0, "reprocess")
    if previous.fingerprint != fingerprint:
        raise ExtractChangedError(
            f"{file} changed since rows 1-{previous.rows_done} of it were published (fingerprint "
            f"{previous.fingerprint} then, {fingerprint} now). Nothing of the new version "
            "was published. Restore the original file, or rerun with reprocess=True to publish the "
            "new version in full."
        )
    if previous.complete:
        return Skip(previous)
    return Resume(previous.rows_done, "resume", previous if previous.rows_done else None)


def continues_reprocessing(previous: Checkpoint, run: RunInfo) -> bool:
    """Whether ``previous`` was written by an earlier try of this attempt's reprocessing."""
    same_attempt = (previous.run_id, previous.clear_number) == (run.run_id, run.clear_number)
    return previous.reprocess and same_attempt
