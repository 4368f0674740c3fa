"""Which files the day's duplicate rule spans for one job, and feeding it in file-name order.

When every file a job publishes is in the day's scope, the rule is decided in one pass
(:class:`~kafka_ingest.validate.dedup.SeenKeys`): the files the job publishes are judged as they
stream, and the scope's other files up to its last one are key-scanned when their turn comes.
Otherwise (files outside the day's listing) the scope is pre-scanned into a
:class:`~kafka_ingest.validate.dedup.DuplicateIndex`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from kafka_ingest.read import file_name, read_extract
from kafka_ingest.specs import TopicSpec
from kafka_ingest.validate.dedup import DuplicateIndex, SeenKeys


class DuplicateScope:
    """The duplicate rule of one job: who is a key's first occurrence, across the day's files."""

    def __init__(self, spec: TopicSpec, batch_size: int) -> None:
        self._spec, self._batch_size = spec, batch_size
        self._rule: DuplicateIndex | SeenKeys = DuplicateIndex.empty()
        self._unrecorded: list[str] = []

    def cover(self, day_files: Sequence[str], files: Sequence[str]) -> None:
        """Span the rule over ``day_files`` up to the last of ``files`` (both sorted by name)."""
        if not self._spec.unique_key:
            return
        last = file_name(files[-1]) if files else ""
        scope = [f for f in day_files if file_name(f) <= last]
        publishing = {file_name(f) for f in files}
        if not publishing <= {file_name(f) for f in scope}:
            self._rule = DuplicateIndex.build(self._key_chunks(scope))
            return
        self._unrecorded = [f for f in scope if file_name(f) not in publishing]
        self._rule = SeenKeys()

    def is_first_occurrence(self, file: str, rows: np.ndarray, keys: pa.Array) -> np.ndarray:
        return self._rule.is_first_occurrence(file, rows, keys)

    def record_before(self, name: str) -> None:
        """Feed the one-pass rule the scope's unpublished files that come before ``name``."""
        while self._unrecorded and file_name(self._unrecorded[0]) < name:
            self.record([self._unrecorded.pop(0)])

    def record(self, paths: Sequence[str]) -> None:
        """Feed the one-pass rule whole files that are not streamed (skipped or out of the job)."""
        if isinstance(self._rule, SeenKeys):
            for file, rows, keys in self._key_chunks(paths):
                self._rule.record(file, rows, keys)

    def _key_chunks(self, paths: Sequence[str]) -> Iterator[tuple[str, np.ndarray, pa.Array]]:
        """The key column of ``paths``, read as a full read numbers and rejects the rows."""
        for path in paths:
            for batch in read_extract(
                path,
                columns=(self._spec.key_field,),
                batch_rows=max(self._batch_size, 100_000),
                options=self._spec.reader,
            ):
                yield file_name(path), batch.row_numbers, batch.table.column(0).combine_chunks()
