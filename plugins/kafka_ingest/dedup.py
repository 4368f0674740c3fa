"""EXTRACTS.md's duplicate rule: a key seen again within one day's extract goes to the DLQ.

"The first occurrence in (part file name, row) order is published, later ones go to the DLQ."
Deciding that needs the whole day, so the framework scans the key column of the day's files once,
before publishing, into a :class:`DuplicateIndex`; every batch then asks it which of its rows are
first occurrences and puts the answer in the boolean column :data:`FIRST_OCCURRENCE_COLUMN`, which
the validator's ``key_unique_in_day`` rule checks.

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
so it stays small and travels through XCom as a JSON-able dict (:meth:`DuplicateIndex.to_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for XCom); :meth:`from_dict` restores it."""
        return {
            "files": self.files,
            "keys": self._keys.to_pylist(),
            "first_file": self._first_file.tolist(),
            "first_row": self._first_row.tolist(),
            "occurrences": self._occurrences.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DuplicateIndex:
        return cls(data["files"], data["keys"], data["first_file"], data["first_row"], data["occurrences"])


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

    Memory: each distinct key once, sorted by a 64-bit hash (8 bytes) next to its text (Arrow,
    length + 4 bytes); lookups are binary searches on the hashes, and a hash that matches is
    confirmed on the text, so the answer is exact. Hashes live in a few sorted runs merged like a
    binary counter, so adding n keys costs O(n log n) in all.
    """

    def __init__(self) -> None:
        self._order = _Scan()
        self._runs: list[tuple[np.ndarray, pa.Array]] = []

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
        texts = keys.take(pa.array(present)).cast(pa.string())
        hashes = _hash(texts)
        repeated = np.zeros(len(present), dtype=bool)
        for run_hashes, run_texts in self._runs:
            at = np.searchsorted(run_hashes, hashes)
            hit = run_hashes[np.minimum(at, len(run_hashes) - 1)] == hashes
            for i in np.flatnonzero(hit):
                repeated[i] = repeated[i] or _text_at(run_hashes, run_texts, int(at[i]), texts[i].as_py())
        ordered = np.sort(hashes)
        shared = ordered[1:][ordered[1:] == ordered[:-1]]
        if len(shared):  # rows of this batch that share a hash: judged in row order, on the text
            seen: set[str] = set()
            for i in np.flatnonzero(np.isin(hashes, shared)):
                text = texts[i].as_py()
                repeated[i] = repeated[i] or text in seen
                seen.add(text)
        first[present[repeated]] = False
        self._add(hashes[~repeated], texts.filter(pa.array(~repeated)))
        return first

    def _add(self, hashes: np.ndarray, texts: pa.Array) -> None:
        if not len(hashes):
            return
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], texts.take(pa.array(order))))
        while len(self._runs) > 1 and len(self._runs[-1][0]) * 2 >= len(self._runs[-2][0]):
            (h1, t1), (h2, t2) = self._runs.pop(), self._runs.pop()
            merged = np.concatenate([h2, h1])
            order = np.argsort(merged, kind="stable")
            self._runs.append((merged[order], pa.concat_arrays([t2, t1]).take(pa.array(order))))


def _text_at(hashes: np.ndarray, texts: pa.Array, at: int, text: str) -> bool:
    """Whether ``text`` is among the keys stored under ``hashes[at]`` (and the same hash after it)."""
    wanted = hashes[at]
    while at < len(hashes) and hashes[at] == wanted:
        if texts[at].as_py() == text:
            return True
        at += 1
    return False


_HASH_BASE = 0x100000001B3  # FNV's 64-bit prime; any odd constant works, the text is compared anyway
_powers = np.ones(1, dtype=np.uint64)


def _hash(texts: pa.Array) -> np.ndarray:
    """A 64-bit polynomial hash of each non-empty string, computed over Arrow's buffers with numpy."""
    global _powers
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset : texts.offset + len(texts) + 1]
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    longest = int(lengths.max())
    if longest > len(_powers):
        base, powers = _HASH_BASE, [1]
        for _ in range(longest - 1):
            powers.append(powers[-1] * base % (1 << 64))
        _powers = np.array(powers, dtype=np.uint64)
    relative = starts - offsets[0]
    position = np.arange(len(data), dtype=np.int64) - np.repeat(relative, lengths)
    with np.errstate(over="ignore"):
        sums = np.add.reduceat(data.astype(np.uint64) * _powers[position], relative)
        mixed = (sums ^ lengths.astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
        return mixed ^ (mixed >> np.uint64(29))


def _as_large_string(keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    keys = pc.cast(keys, pa.large_string())
    return keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
