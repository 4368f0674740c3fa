"""Getting a batch into Kafka: the transaction loop, records and their headers, checkpoints, DLQ envelopes.

``transactions.py`` is the one place that talks to the producer; ``messages.py`` the one place that
builds records, DLQ records and (through ``headers.py``, which owns every header name) their
headers; ``checkpoints.py`` where a file's position is kept and how it advances; ``dlq.py`` and
``masking.py`` what a rejected row looks like once it leaves; ``null.py`` what a dry run uses.
"""
