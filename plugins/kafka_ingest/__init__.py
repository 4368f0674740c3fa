"""Airflow operators that publish validated extracts to Kafka, exactly once.

The package is shaped like an Airflow provider: ``hooks/`` wrap Connections, ``operators/``
and ``sensors/`` are what DAGs use, and the small modules beside them each do one job of the
pipeline (read, validate, serialize, publish, checkpoint, dead-letter, metrics).
"""

from __future__ import annotations

__version__ = "0.1.0"
