"""Which files an operator publishes: a file, a day folder, a glob, or an explicit list.

Local paths and fsspec URLs (``s3://``, ``gs://``, ``file://``, ``memory://``) are accepted, as
are Airflow ``ObjectStoragePath`` objects. The result is sorted by file name, the order the
duplicate rule of EXTRACTS.md is defined in.

Part files: every name with a suffix the format registry knows, except ``_*`` and ``.*`` (Spark
writes JSON Lines as ``part-*.json``, hence ``.json``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar, overload

import fsspec

from kafka_ingest.read.files import file_name
from kafka_ingest.read.registry import is_extract_name

_GLOB_CHARS = frozenset("*?[")


class _Entry(Protocol):
    @property
    def name(self) -> str: ...


_E = TypeVar("_E", bound=_Entry)
_E_co = TypeVar("_E_co", bound=_Entry, covariant=True)


class _Directory(Protocol[_E_co]):
    def iterdir(self) -> Iterable[_E_co]: ...


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


@overload
def list_part_files(day_dir: str) -> list[str]: ...
@overload
def list_part_files(day_dir: _Directory[_E]) -> list[_E]: ...
def list_part_files(day_dir: str | _Directory[Any]) -> list[Any]:
    """The day's part files sorted by name, the order the duplicate rule is defined in.

    ``_SUCCESS``, hidden or underscore files and unknown suffixes are skipped. An object with
    ``iterdir`` (ObjectStoragePath, UPath) yields entries of its own type, so they keep their
    filesystem and credentials; a string yields strings in the same form (path or URL).
    """
    if not isinstance(day_dir, str):
        return sorted((e for e in day_dir.iterdir() if _is_part_name(e.name)), key=lambda e: e.name)
    fs, root = fsspec.core.url_to_fs(day_dir)
    files = [entry["name"] for entry in fs.ls(root, detail=True) if entry["type"] == "file"]
    names = sorted(posixpath.basename(f.rstrip("/")) for f in files)
    base, sep = day_dir.rstrip("/"), "/" if "://" in day_dir else os.sep
    return [f"{base}{sep}{name}" for name in names if _is_part_name(name)]


def _is_part_name(name: str) -> bool:
    return not name.startswith((".", "_")) and is_extract_name(name)


def _strip(url: str) -> str:
    return url.split("://", 1)[1] if "://" in url else url
