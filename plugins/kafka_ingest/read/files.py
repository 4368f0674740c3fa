"""Access to extract files, whatever holds them: opening, fsspec pinning, fingerprints, file state.

Local paths, fsspec URLs (``s3://``, ``gs://``, ``simplecache::...``) and objects with ``open``
(Airflow's ``ObjectStoragePath``, UPath) are all an :data:`ExtractPath`. Everything that can go
wrong while reading one becomes an :class:`ExtractReadError` that names the file.
"""

from __future__ import annotations

import hashlib
import posixpath
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

import fsspec
import pyarrow as pa


class ExtractReadError(Exception):
    """A file that cannot be read at all; a retry helps only if the file changes."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file


class Openable(Protocol):
    def open(self, mode: str) -> Any: ...


ExtractPath = str | Openable


def file_name(path: Any) -> str:
    """The file's base name: what part files are sorted by and checkpoint keys end with."""
    name = getattr(path, "name", None)
    return name if isinstance(name, str) else posixpath.basename(str(path).rstrip("/"))


class PinnedFile:
    """An fsspec URL whose filesystem was resolved by the thread that made this object.

    fsspec caches filesystem instances per thread, so a URL opened on another thread gets a new
    instance: for ``simplecache::`` URLs a second download into a second temp folder, for object
    stores a second session. The pipeline pins each file in the task's thread (where it was
    fingerprinted) before its read runs on the parse-ahead thread. ``str()`` is the URL, so
    batches, rejects and headers name the file as before.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = posixpath.basename(url.rstrip("/"))
        self._fs, self._location = fsspec.core.url_to_fs(url)

    def open(self, mode: str) -> Any:
        return self._fs.open(self._location, mode)

    def __str__(self) -> str:
        return self.url


def pinned(path: ExtractPath) -> ExtractPath:
    """``path``, with an fsspec URL resolved in this thread (see :class:`PinnedFile`)."""
    return PinnedFile(path) if isinstance(path, str) and "://" in path else path


def fingerprint(path: ExtractPath) -> str:
    """SHA-256 of the file's bytes as stored, so a rewritten extract is told from a retried one."""
    digest = hashlib.sha256()
    with read_errors(str(path)), open_binary(path) as raw:
        while chunk := raw.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


#: ``fsspec`` ``info()`` fields that change when an object is rewritten (local, S3, GCS, Azure, ...).
_STAMPS = ("mtime", "LastModified", "last_modified", "ETag", "etag", "generation")


def file_state(path: ExtractPath) -> tuple[Any, ...]:
    """The file's size and modification stamps: one ``stat`` (or HEAD), unlike :func:`fingerprint`.

    A caller compares it before and during a read to notice a file truncated, rewritten or
    deleted under it: such a read ends early or mixes versions without any read error.
    """
    with read_errors(str(path)):
        if not isinstance(path, str):
            stat = path.stat()  # type: ignore[attr-defined]
            return (stat.st_size, stat.st_mtime)
        fs, location = fsspec.core.url_to_fs(path)
        info = fs.info(location)
    return (info.get("size"), *(info[stamp] for stamp in _STAMPS if stamp in info))


def check_unchanged(path: ExtractPath, state: tuple[Any, ...]) -> None:
    """Raise if the file is no longer as :func:`file_state` saw it (``state``)."""
    now = file_state(path)
    if now != state:
        raise ExtractReadError(
            str(path),
            f"changed while it was being read (size and stamps {state} then, {now} now); nothing read "
            "after the change was committed. A retry resumes after the last committed batch once the "
            "file is back as it was, and fails as changed if it is not.",
        )


@contextmanager
def read_errors(file: str) -> Iterator[None]:
    """Turn the ways a file can fail to be read into one error that names it."""
    try:
        yield
    except (OSError, EOFError, zlib.error, UnicodeError, pa.ArrowException) as exc:
        raise ExtractReadError(file, f"cannot be read: {type(exc).__name__}: {exc}") from exc


@contextmanager
def open_binary(path: ExtractPath) -> Iterator[IO[bytes]]:
    if not isinstance(path, str):
        with path.open("rb") as raw:
            yield raw
    elif "://" not in path:
        with open(path, "rb") as raw:
            yield raw
    else:
        with fsspec.open(path, "rb") as raw:
            yield raw
