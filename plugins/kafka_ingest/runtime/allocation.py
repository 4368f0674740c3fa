"""How a run's memory allocators are tuned: Python's cyclic GC and glibc's malloc.

Both defaults are tuned for processes that allocate a little at a time. An ingestion run
allocates a few objects per row from Python and a few blocks per record inside librdkafka, for
millions of rows, and both defaults then spend measurable CPU time, under the GIL, on work that
frees nothing (docs/performance.md). :func:`tuned_for_ingestion` changes them for the length of
a run and restores them afterwards; runs that overlap in one process (tests, ``dag.test()`` of
several tasks) share one tuning, restored when the last of them ends.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: Collect the young generation every 50k container allocations instead of every 700.
GC_YOUNG_THRESHOLD = 50_000

#: ``M_MXFAST`` from glibc's ``<malloc.h>``: the largest request served from the "fastbins".
_M_MXFAST = 1
#: glibc's default for it on this word size (``64 * sizeof(size_t) / 4``: 128 bytes on 64-bit).
_GLIBC_DEFAULT_MXFAST = 64 * ctypes.sizeof(ctypes.c_size_t) // 4

_lock = threading.Lock()
_active = 0
_saved_gc_threshold: tuple[int, ...] = ()


@contextmanager
def tuned_for_ingestion() -> Iterator[None]:
    """Fewer GC passes and no glibc fastbins while the block runs (see the module docstring).

    - **GC.** Freezing the objects that exist when the run starts (GX's, pandas' and Airflow's
      import-time heap) and collecting the young generation every 50k allocations instead of
      every 700 keeps the collector from rescanning that heap for every batch's short-lived rows.
    - **Fastbins.** librdkafka allocates each record's message and each of its headers with
      ``malloc`` and frees them when the delivery report is served, on the task thread: hundreds
      of thousands of small blocks per batch land in glibc's fastbins. The next request of 1 KiB
      or more then makes glibc consolidate all of them, under the GIL. With fastbins off
      (``mallopt(M_MXFAST, 0)``) a freed block is merged when it is freed instead, which costs
      less in total. Only on glibc; elsewhere nothing changes. Measurements: docs/performance.md.
    """
    global _active, _saved_gc_threshold
    with _lock:
        _active += 1
        if _active == 1:
            _saved_gc_threshold = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(_saved_gc_threshold[0], GC_YOUNG_THRESHOLD), *_saved_gc_threshold[1:])
            _set_malloc_fastbin_limit(0)
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _set_malloc_fastbin_limit(_configured_fastbin_limit())
                gc.set_threshold(*_saved_gc_threshold)
                gc.unfreeze()


def _set_malloc_fastbin_limit(limit: int) -> bool:
    """``mallopt(M_MXFAST, limit)`` when the process runs on glibc; True if it was applied."""
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    applied = bool(mallopt(_M_MXFAST, limit))
    if not applied:
        log.debug("glibc refused mallopt(M_MXFAST, %d); malloc keeps its settings", limit)
    return applied


def _configured_fastbin_limit() -> int:
    """The limit the process started with: ``glibc.malloc.mxfast`` from ``GLIBC_TUNABLES`` if set,
    else glibc's default."""
    for tunable in os.environ.get("GLIBC_TUNABLES", "").split(":"):
        name, _, value = tunable.partition("=")
        if name.strip() == "glibc.malloc.mxfast" and value.strip().isdigit():
            return int(value)
    return _GLIBC_DEFAULT_MXFAST


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt`` from the running process, or None (not Linux, musl, no symbol)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        process = ctypes.CDLL(None)
        process.gnu_get_libc_version  # noqa: B018 - only glibc has it; musl's mallopt is a stub
        mallopt = process.mallopt
    except (AttributeError, OSError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
