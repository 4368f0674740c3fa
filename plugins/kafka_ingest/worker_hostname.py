"""The host name Airflow records on each task instance (``[core] hostname_callable``).

Several workers on one machine (the local stack's two Celery workers) would all record the same
fully qualified name, and then nobody can tell from the task instance which worker ran a try.
The stack starts each component with ``KAFKA_INGEST_WORKER_NAME`` (``worker-1``, ``scheduler``...),
and this callable puts it after the machine's name; without it, it is Airflow's default.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "KAFKA_INGEST_WORKER_NAME"


def worker_hostname() -> str:
    """``<fqdn>`` or ``<fqdn>-<worker name>``: still a valid host label for log URLs."""
    name = os.environ.get(WORKER_NAME_ENV, "").strip()
    fqdn = socket.getfqdn()
    return f"{fqdn}-{name}" if name else fqdn
