"""Two kinds of failure, told apart by whether a retry can help.

The operator turns :class:`PermanentError` into ``AirflowFailException`` (the task fails at once
instead of burning its retries on an incompatible schema or an exhausted error budget) and every
other exception into a retryable ``AirflowException``.
"""

from __future__ import annotations


class PermanentError(Exception):
    """A failure no retry can fix without a change to the input, the schema or the settings."""
