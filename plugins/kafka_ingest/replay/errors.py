"""What can stop a replay, split by whether a retry can help."""

from __future__ import annotations

from kafka_ingest.errors import PermanentError


class ReplayInputError(PermanentError):
    """The replay's input is wrong (corrections file, selection): nothing was published, and a
    retry with the same input cannot succeed."""


class ReplayReadTimeout(Exception):
    """A topic could not be read up to its recorded end in time (an open transaction of another
    producer, a slow broker): nothing was published by this step; a retry reads again."""
