"""What a transaction carries: records (as messages or as columns), DLQ records, the checkpoint.

Every message keeps the source row it stands for (``row``), so a step that must find a record's
row again (a record the broker refused as too large) reads it here, never from a header.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from kafka_ingest.batches import Headers


@dataclass
class OutgoingMessage:
    """One record to produce; ``row`` ties it back to its source row (0 for checkpoints)."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers | None = None
    partition: int = -1
    row: int = 0


@dataclass
class RecordColumns(Sequence[OutgoingMessage]):
    """Records for one topic as parallel columns: what the hot produce loop reads.

    The judge stage gets a batch's values, keys and per-row header values from Arrow as whole
    columns. Kept as columns they are produced without one :class:`OutgoingMessage` per record
    (a measurable share of the task's GIL time, docs/performance.md); the header lists
    ``produce()`` needs are made as it goes. As a sequence it still reads as ``OutgoingMessage``
    values (headers: ``common_headers``, then ``row_headers`` in order), for the rare paths (a
    record refused as too large) and for tests.
    """

    topic: str
    values: list[bytes]
    keys: list[bytes | None]
    rows: list[int]
    #: the same on every record, and first
    common_headers: Headers = field(default_factory=list)
    #: per-row header values by header name, one column each, after the common headers
    row_headers: dict[str, list[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {len(self.values), len(self.keys), len(self.rows), *map(len, self.row_headers.values())}
        if len(lengths) > 1:
            raise ValueError(f"RecordColumns: columns of different lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> OutgoingMessage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[OutgoingMessage]: ...

    def __getitem__(self, index: int | slice) -> OutgoingMessage | Sequence[OutgoingMessage]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        own = ((name, column[index]) for name, column in self.row_headers.items())
        headers = [*self.common_headers, *own]
        value, key, row = self.values[index], self.keys[index], self.rows[index]
        return OutgoingMessage(self.topic, value, key, headers, -1, row)

    def __iter__(self) -> Iterator[OutgoingMessage]:
        for value, key, headers, row in zip(
            self.values, self.keys, self.header_lists(), self.rows, strict=True
        ):
            yield OutgoingMessage(self.topic, value, key, headers, -1, row)

    def header_lists(self) -> Iterator[Headers | None]:
        """Each record's header list, built by C-level iterators (no Python code per record)."""
        count = len(self)
        if not self.common_headers and not self.row_headers:
            return itertools.repeat(None, count)
        common = [itertools.repeat(header, count) for header in self.common_headers]
        own = [zip(itertools.repeat(n, count), column, strict=True) for n, column in self.row_headers.items()]
        return map(list, zip(*common, *own, strict=True))

    def without(self, rows: Iterable[int]) -> RecordColumns:
        """The same columns without the records of source ``rows``."""
        dropped = set(rows)
        keep = [row not in dropped for row in self.rows]

        def kept(column: list[Any]) -> list[Any]:
            return list(itertools.compress(column, keep))

        return RecordColumns(
            self.topic,
            kept(self.values),
            kept(self.keys),
            kept(self.rows),
            self.common_headers,
            {name: kept(column) for name, column in self.row_headers.items()},
        )


@dataclass
class BatchToPublish:
    """What one transaction carries.

    ``records`` is a list of messages or, from the pipeline, :class:`RecordColumns`.
    ``checkpoint`` builds the checkpoint record from the batch as it is about to be produced (a
    retry may have moved records to the DLQ); ``on_too_large`` turns a record refused for its size
    into its DLQ replacement.
    """

    records: Sequence[OutgoingMessage]
    dlq: list[OutgoingMessage]
    checkpoint: Callable[[BatchToPublish], OutgoingMessage]
    on_too_large: Callable[[OutgoingMessage, str], OutgoingMessage] | None = None


@dataclass
class BatchResult:
    published: int
    dlq: int
    attempts: int
    moved_to_dlq: list[int] = field(default_factory=list)
    commit_seconds: float = 0.0
    #: False for a dry run's batch, which nothing committed (``publish/null.py``)
    committed: bool = True
