"""The job: one run's files through the stages, exactly once, as a short orchestrator and its parts.

``job.py`` (the order of operations per file), ``resume.py`` (the pure skip/resume/changed decision),
``budget.py`` (the error budget), ``stages.py`` (parse -> judge -> encode on threads),
``duplicates.py`` (the day's duplicate-rule scope), ``summary.py`` (what a run reports),
``settings.py`` and ``wiring.py`` (a job from connection settings).
"""

from __future__ import annotations

from kafka_ingest.pipeline.job import IngestionJob
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.pipeline.summary import FileSummary, summarize
from kafka_ingest.pipeline.wiring import build_job

__all__ = ["FileSummary", "IngestionJob", "JobSettings", "build_job", "summarize"]
