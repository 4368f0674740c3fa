"""allocation: a run collects garbage less often and keeps glibc's fastbins off, then restores both."""

from __future__ import annotations

import ctypes
import gc
import platform

import pytest

from kafka_ingest.runtime import allocation
from kafka_ingest.runtime.allocation import GC_YOUNG_THRESHOLD, tuned_for_ingestion

on_glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="fastbins are glibc's")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _fastbin_blocks_after_freeing_small_blocks() -> int:
    """Allocate and free 2,000 blocks of 48 bytes on this thread; the number of free blocks glibc
    then holds in the main arena's fastbins (``mallinfo2().smblks``)."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.mallinfo2.restype = _MallInfo2
    collecting = gc.isenabled()
    gc.disable()  # a collection in between could make glibc merge the fastbins before they are counted
    try:
        libc.malloc_trim(0)  # start from empty fastbins
        blocks = [libc.malloc(48) for _ in range(2_000)]
        first, second = blocks[::2], blocks[1::2]
        for block in first:  # every other block: neighbours stay in use, nothing merges away
            libc.free(block)
        held = int(libc.mallinfo2().smblks)
        for block in second:
            libc.free(block)
    finally:
        if collecting:
            gc.enable()
    return held


def test_a_run_freezes_the_heap_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    with tuned_for_ingestion():
        assert gc.get_threshold()[0] == max(before[0], GC_YOUNG_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_overlapping_runs_keep_the_tuning_until_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first = tuned_for_ingestion()
    second = tuned_for_ingestion()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == max(before[0], GC_YOUNG_THRESHOLD), "the second run is still on"
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_the_tuning_is_restored_when_the_run_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError, match="broker gone"), tuned_for_ingestion():
        raise RuntimeError("broker gone")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@on_glibc
def test_freed_small_blocks_stay_out_of_the_fastbins_during_a_run_and_not_after() -> None:
    with tuned_for_ingestion():
        assert _fastbin_blocks_after_freeing_small_blocks() == 0
    assert _fastbin_blocks_after_freeing_small_blocks() > 0, "glibc's default is back"


@on_glibc
def test_the_fastbin_limit_restored_is_the_one_the_process_was_started_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=0:glibc.malloc.mxfast=0")
    with tuned_for_ingestion():
        pass
    assert _fastbin_blocks_after_freeing_small_blocks() == 0, "the process asked for no fastbins"
    monkeypatch.delenv("GLIBC_TUNABLES")
    with tuned_for_ingestion():
        pass
    assert _fastbin_blocks_after_freeing_small_blocks() > 0


def test_without_glibc_malloc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocation.sys, "platform", "darwin")
    assert allocation._glibc_mallopt() is None
    assert allocation._set_malloc_fastbin_limit(0) is False
