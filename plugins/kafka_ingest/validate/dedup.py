"""EXTRACTS.md's duplicate rule: a key seen again within one day's extract goes to the DLQ.

"The first occurrence in (part file name, row) order is published, later ones go to the DLQ."
Deciding that needs the whole day. When a job publishes the day's files in name order, it decides
in one pass as the files stream (:class:`SeenKeys`, fed the keys of the day's files it does not
publish when their turn comes; ``pipeline/duplicates.py``); otherwise it first scans the day's key
columns into a :class:`DuplicateIndex`. Every batch asks which of its rows are first occurrences
and puts the answer in the boolean column :data:`FIRST_OCCURRENCE_COLUMN`, which the validator's
``key_unique_in_day`` rule checks.

Decisions:

- An occurrence is any record whose key text is non-empty (not null, not ``""``), whether or not
  the row is otherwise valid. If the first occurrence is invalid, the later ones are still
  duplicates: which of them the source meant is ambiguous, so they go to the DLQ, never a guess.
  Rows that could not be read at all (read-stage rejects) have no key and do not count.
- Keys compare as exact text (``A-1`` and ``a-1`` or `` A-1`` differ; those fail the key's format
  rule anyway).
- Files are identified by the exact string the framework passes (path or URL); the chunks must come
  in file name order and, within a file, in row order, as a sorted folder listing read front to
  back yields them. Anything else raises ``ValueError``, because the order decides who wins.

Memory: the scan keeps each distinct key once, in Arrow buffers (compacted with Arrow's hash
group-by), never as Python objects; the finished index keeps only keys that occur more than once,
so it stays small.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FIRST_OCCURRENCE_COLUMN = "_first_occurrence"
_ROW_BITS = 40  # a position is (file number << 40) | row: rows up to ~1.1e12 per file
_COMPACT_ROWS = 1_000_000


class DuplicateIndex:
    """The keys of one day's extract that occur more than once, each with its first (file, row)."""

    def __init__(
        self,
        files: Sequence[str] = (),
        keys: Sequence[str] = (),
        first_file: Sequence[int] = (),
        first_row: Sequence[int] = (),
        occurrences: Sequence[int] = (),
    ):
        self.files = list(files)
        self._file_numbers = {file: number for number, file in enumerate(self.files)}
        self._keys = pa.array(list(keys), type=pa.large_string())
        self._first_file = np.asarray(first_file, dtype=np.int64)
        self._first_row = np.asarray(first_row, dtype=np.int64)
        self._occurrences = np.asarray(occurrences, dtype=np.int64)

    @classmethod
    def empty(cls) -> DuplicateIndex:
        """An index without duplicates: every row is a first occurrence."""
        return cls()

    @classmethod
    def build(cls, chunks: Iterable[tuple[str, np.ndarray, pa.Array]]) -> DuplicateIndex:
        """Scan ``(file, row_numbers, keys)`` chunks in (file name, row) order."""
        scan = _Scan()
        for file, row_numbers, keys in chunks:
            scan.add(file, np.asarray(row_numbers, dtype=np.int64), keys)
        return scan.finish()

    def __len__(self) -> int:
        """How many keys occur more than once."""
        return len(self._keys)

    @property
    def duplicate_rows(self) -> int:
        """How many rows the duplicate rule will send to the DLQ (all but each key's first)."""
        return int((self._occurrences - 1).sum())

    def is_first_occurrence(self, file: str, row_numbers: np.ndarray, keys: pa.Array) -> np.ndarray:
        """False exactly for rows whose key occurred earlier in the day; empty keys are never duplicates."""
        keys = _as_large_string(keys)
        if not len(self._keys):
            return np.ones(len(keys), dtype=bool)
        where = pc.index_in(keys, value_set=self._keys)
        duplicated = where.is_valid().to_numpy(zero_copy_only=False)
        slot = pc.fill_null(where, 0).to_numpy(zero_copy_only=False)
        file_number = self._file_numbers.get(file, -1)
        first = (self._first_file[slot] == file_number) & (
            self._first_row[slot] == np.asarray(row_numbers, dtype=np.int64)
        )
        return ~duplicated | first


class _Scan:
    """Accumulates (key, first position, count) per distinct key, compacting as it goes."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self._last_row = 0
        self._seen: pa.Table | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def add(self, file: str, row_numbers: np.ndarray, keys: pa.Array) -> None:
        self._check_order(file, row_numbers)
        keys = _as_large_string(keys)
        present = pc.and_(keys.is_valid(), pc.not_equal(pc.fill_null(keys, ""), ""))
        position = ((len(self.files) - 1) << _ROW_BITS) | row_numbers
        chunk = pa.table({"key": keys, "first": position, "count": np.ones(len(keys), dtype=np.int64)})
        self._pending.append(chunk.filter(present))
        self._pending_rows += len(keys)
        if self._pending_rows >= max(_COMPACT_ROWS, len(self._seen or ())):
            self._compact()

    def finish(self) -> DuplicateIndex:
        self._compact()
        if self._seen is None:
            return DuplicateIndex(self.files)
        repeated = self._seen.filter(pc.greater(self._seen["count"], 1)).sort_by("first")
        first = repeated["first"].to_numpy()
        return DuplicateIndex(
            self.files,
            repeated["key"].to_pylist(),
            (first >> _ROW_BITS).tolist(),
            (first & ((1 << _ROW_BITS) - 1)).tolist(),
            repeated["count"].to_pylist(),
        )

    def _check_order(self, file: str, row_numbers: np.ndarray) -> None:
        """Chunks must follow (file name, row) order: the order decides which occurrence wins."""
        if not self.files or file != self.files[-1]:
            if self.files and file < self.files[-1]:
                raise ValueError(
                    f"duplicate scan: {file} after {self.files[-1]}: files must come in name order"
                )
            self.files.append(file)
            self._last_row = 0
        if len(row_numbers) and (row_numbers[0] <= self._last_row or np.any(np.diff(row_numbers) <= 0)):
            raise ValueError(f"duplicate scan: rows of {file} are not in increasing order")
        if len(row_numbers):
            if row_numbers[-1] >= 1 << _ROW_BITS:
                raise ValueError(f"duplicate scan: row {row_numbers[-1]} of {file} is too large")
            self._last_row = int(row_numbers[-1])

    def _compact(self) -> None:
        tables = ([self._seen] if self._seen is not None else []) + self._pending
        self._pending, self._pending_rows = [], 0
        if not tables:
            return
        grouped = pa.concat_tables(tables).group_by("key").aggregate([("first", "min"), ("count", "sum")])
        self._seen = grouped.rename_columns({"first_min": "first", "count_sum": "count"}).select(
            ["key", "first", "count"]
        )


class SeenKeys:
    """The same rule decided in one pass: every key is judged against the keys seen before it.

    Used when the job reads every file of the rule's scope front to back anyway: recording each
    batch's keys as it is judged gives exactly :class:`DuplicateIndex`'s answers without the
    pre-scan, which read every file twice. Calls must follow (file name, row) order, as for
    :meth:`DuplicateIndex.build`; a file the job does not publish is fed through :meth:`record`.

    Memory: each distinct key once, as its UTF-8 bytes in sorted fixed-width numpy runs (13 bytes
    for an order number; no hash, no offsets), looked up by binary search, exactly. Runs merge
    like a binary counter up to :data:`_MAX_RUN_KEYS` keys, so adding n keys costs O(n log n) and
    a merge copies a bounded slice only. Keys longer than :data:`_MAX_FIXED_BYTES` bytes or holding
    a NUL byte (numpy's fixed-width bytes drop trailing NULs) are kept in a set instead.
    """

    def __init__(self) -> None:
        self._order = _Scan()
        self._runs: list[np.ndarray] = []
        self._odd: set[bytes] = set()

    def record(self, file: str, row_numbers: np.ndarray, keys: pa.Array) -> None:
        """Note the keys of rows that are not judged (a file published earlier, rows resumed past)."""
        self.is_first_occurrence(file, row_numbers, keys)

    def is_first_occurrence(self, file: str, row_numbers: np.ndarray, keys: pa.Array) -> np.ndarray:
        """As :meth:`DuplicateIndex.is_first_occurrence`; the keys count as seen afterwards."""
        self._order._check_order(file, np.asarray(row_numbers, dtype=np.int64))
        keys = _as_large_string(keys)
        first = np.ones(len(keys), dtype=bool)
        present = np.flatnonzero(pc.fill_null(pc.not_equal(keys, ""), False).to_numpy(zero_copy_only=False))
        if not len(present):
            return first
        texts = pc.cast(keys.take(pa.array(present)), pa.large_binary())
        values = texts.to_numpy(zero_copy_only=False)
        lengths = pc.binary_length(texts).to_numpy(zero_copy_only=False)
        odd = (lengths > _MAX_FIXED_BYTES) | pc.match_substring(texts, "\x00").to_numpy(zero_copy_only=False)
        repeated = np.zeros(len(present), dtype=bool)
        fixed = np.flatnonzero(~odd)
        if len(fixed):
            repeated[fixed] = self._judge_fixed(values[fixed].astype(f"S{int(lengths[fixed].max())}"))
        for i in np.flatnonzero(odd):  # rare: judged one by one, in row order
            repeated[i] = values[i] in self._odd
            self._odd.add(values[i])
        first[present[repeated]] = False
        return first

    def _judge_fixed(self, keys: np.ndarray) -> np.ndarray:
        """Which keys were seen before (in an earlier batch, or earlier in this one); records the rest."""
        lengths = np.char.str_len(keys)
        repeated = np.zeros(len(keys), dtype=bool)
        for run in self._runs:
            fits = np.flatnonzero(lengths <= run.dtype.itemsize)  # a longer key cannot be in the run
            probe = keys[fits].astype(run.dtype)
            at = np.minimum(np.searchsorted(run, probe), len(run) - 1)
            repeated[fits[run[at] == probe]] = True
        earlier_in_batch = np.ones(len(keys), dtype=bool)
        earlier_in_batch[np.unique(keys, return_index=True)[1]] = False
        repeated |= earlier_in_batch
        self._add(np.sort(keys[~repeated]))
        return repeated

    def _add(self, run: np.ndarray) -> None:
        if not len(run):
            return
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]) <= _MAX_RUN_KEYS:
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(_merged(older, newer))


def _merged(older: np.ndarray, newer: np.ndarray) -> np.ndarray:
    """Two sorted runs as one sorted run, in linear copies plus a binary search per newer key.

    Sorting their concatenation again (quicksort on fixed-width bytes) would cost more than the
    rest of the duplicate rule (docs/performance.md); runs that do not interleave (an extract in
    key order) cost almost nothing.
    """
    dtype = np.promote_types(older.dtype, newer.dtype)
    older, newer = older.astype(dtype, copy=False), newer.astype(dtype, copy=False)
    at = np.searchsorted(older, newer) + np.arange(len(newer))
    out = np.empty(len(older) + len(newer), dtype=dtype)
    from_newer = np.zeros(len(out), dtype=bool)
    from_newer[at] = True
    out[at] = newer
    out[~from_newer] = older
    return out


_MAX_RUN_KEYS = 1 << 20
_MAX_FIXED_BYTES = 64


def _as_large_string(keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    keys = pc.cast(keys, pa.large_string())
    return keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
