"""The one interface every extract format implements, and its registry entry.

A format is a function from the file's bytes to bounded :class:`~kafka_ingest.batches.ReadBatch`
objects that keeps the reading contract of ``kafka_ingest.read`` (record numbers, rejects, batch
cuts, output columns). Adding one is a module in this folder plus one line in
``read/registry.py`` (docs/adding-a-format.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read.batching import Limits, ReadSpec


class FormatReader(Protocol):
    """Reads one file: its bytes (gunzipped if the format is ``compressible``) in, batches out."""

    def __call__(self, binary: IO[bytes], spec: ReadSpec, limits: Limits, /) -> Iterator[ReadBatch]: ...


@dataclass(frozen=True)
class Format:
    """A registry entry: the format's name, the file suffixes it claims and its reader.

    ``compressible`` formats also claim ``<suffix>.gz`` and get gunzipped bytes (gzip is also
    recognised by its magic bytes); the others get the file as stored, seekable.
    """

    name: str
    suffixes: tuple[str, ...]
    read: FormatReader
    compressible: bool = True
