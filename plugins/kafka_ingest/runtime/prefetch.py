"""Run a generator one or a few items ahead of its consumer, on a background thread.

Used where the producing side spends its time outside the GIL, or waits where the consuming side
does not: the CSV reader parses the next blocks with Arrow and numpy while the pipeline works on
this batch, and the pipeline prepares (reads, validates, encodes) the next batch while this one is
produced and its transaction commits. Items stay in order; the consumer sees exactly what the
generator would have yielded, and the generator's exception, raised at the same place.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")
_POLL_S = 0.1  # how often a blocked producer looks whether the consumer went away


def prefetch(items: Iterator[_T], depth: int, *, name: str = "prefetch") -> Generator[_T, None, None]:
    """``items``, produced on a thread at most ``depth`` items ahead of the consumer.

    ``depth`` counts items produced but not yet taken, so the memory held is bounded by ``depth``
    items plus the one the consumer holds. Closing the consumer (or its raising) stops the
    producer after its current item and waits for it: the generator's resources (an open file)
    are not touched after the consumer's owner releases them.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    handoff: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    room = threading.Semaphore(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            while _wait_for(room, stop):
                item = next(items, _END)
                if item is _END:
                    handoff.put(("end", None))
                    return
                handoff.put(("item", item))
        except BaseException as exc:  # handed to the consumer, which raises it
            handoff.put(("error", exc))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            room.release()
            yield value
    finally:
        stop.set()
        worker.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


_END: Any = object()


def _wait_for(room: threading.Semaphore, stop: threading.Event) -> bool:
    """Take a slot for the next item; False once the consumer has gone."""
    while not stop.is_set():
        if room.acquire(timeout=_POLL_S):
            return not stop.is_set()
    return False
