"""Which files an operator publishes: a file, a day folder, a glob, or an explicit list.

Local paths and fsspec URLs (``s3://``, ``gs://``, ``file://``, ``memory://``) are accepted, as
are Airflow ``ObjectStoragePath`` objects. The result is sorted by file name, the order the
duplicate rule of EXTRACTS.md is defined in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import fsspec

from kafka_ingest.readers import list_part_files

_GLOB_CHARS = frozenset("*?[")


def resolve_extract_files(source: Any) -> list[Any]:
    """Expand ``source`` into extract files, sorted by name; an empty list if there are none."""
    if source is None:
        return []
    if isinstance(source, (list, tuple)):
        items: Sequence[Any] = source
        return sorted((f for item in items for f in resolve_extract_files(item)), key=file_name)
    if not isinstance(source, str):
        if source.is_dir():
            return list_part_files(source)
        if not source.exists():
            raise FileNotFoundError(f"Extract file {source} does not exist.")
        return [source]
    fs, path = fsspec.core.url_to_fs(source)
    protocol = source.split("://", 1)[0] + "://" if "://" in source else ""
    if _GLOB_CHARS & set(path):
        matches = [protocol + m if protocol else m for m in fs.glob(path)]
        return sorted((m for m in matches if not fs.isdir(_strip(m))), key=file_name)
    if fs.isdir(path):
        return list_part_files(source)
    if not fs.exists(path):
        raise FileNotFoundError(f"Extract file {source} does not exist.")
    return [source]


def file_name(path: Any) -> str:
    return PurePosixPath(str(path).rstrip("/")).name


def _strip(url: str) -> str:
    return url.split("://", 1)[1] if "://" in url else url
