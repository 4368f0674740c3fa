"""Make a GX Core validation run cheaper without changing what it finds.

GX's cost per run is almost all fixed (the metric graph it builds for the suite), and this
project runs it ten times per million rows while the other stages wait for the GIL it holds. Three
things in that fixed cost are work whose result nothing here uses, or work done again and again
for the same answer; :func:`lighter_gx_run` switches them off for the length of a run:

* **the batch fingerprint**: GX stamps every pandas batch with an MD5 over ``hash_pandas_object``
  of all its cells, kept only as result metadata that nothing here reads; on string columns it
  costs more than all the expectations together (~1.4 µs per row). GX skips it above a size
  threshold, which is set to 0;
* **the expectation's configuration, rebuilt on every access**: ``Expectation.configuration`` is a
  property that dumps the pydantic model into a fresh ``ExpectationConfiguration`` each time it is
  read, ~1,170 times per run of the orders suite (a third of GX's time: 0.110 -> 0.075 CPU s per
  run, measured on two batches' rows that can fail). GX makes a run's expectation objects from
  their configurations and none of them changes during the run, so the first configuration built
  for an object is kept, by object, until the run ends;
* **metric ids, hashed again and again**: GX names every metric configuration by an MD5 over the
  JSON of its domain and value kwargs (``IDDict.to_id``, ~24 µs for a four-key domain), ~1,150
  times per run for 15 distinct dicts. Within a run the id of a dict whose values are all
  ``str``, ``int``, ``bool`` or ``None`` (exact types) is computed by GX once per content, with
  each value's type as part of the content (``1`` and ``True`` name different metrics, as in GX);
  any other dict, and any call with id keys given, goes to GX as before.

All three are module-level knobs of GX, so runs that overlap in one process share one switch-on
(the last to end restores GX); what a run keeps belongs to the thread whose run made it, so GX
used elsewhere in the process meanwhile is not affected. If GX renames a knob, that part quietly
does nothing (``tests/unit/test_gx_runs.py`` would say so).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_runs = 0
_saved_threshold: int | None = None  # GX's fingerprint threshold while a run has it at 0
_built_by_gx: Any = None  # GX's configuration property once seen; never cleared (_kept_configuration)
_computed_by_gx: Any = None  # GX's IDDict.to_id once seen; never cleared (_kept_id)
#: .kept: {id(expectation): (expectation, configuration)} and .ids: {content: metric id}, in a run
_thread = threading.local()
#: Value types whose equality and hash agree with GX's JSON of them (not float: -0.0 == 0.0)
_ID_SCALARS = frozenset({str, int, bool, type(None)})


@contextmanager
def lighter_gx_run() -> Iterator[None]:
    """For the length of a GX run on this thread: no batch fingerprint, each configuration built
    once, each metric id hashed once per content."""
    _switch_on()
    outer, outer_ids = getattr(_thread, "kept", None), getattr(_thread, "ids", None)
    _thread.kept = outer if outer is not None else {}
    _thread.ids = outer_ids if outer_ids is not None else {}
    try:
        yield
    finally:
        _thread.kept, _thread.ids = outer, outer_ids
        _switch_off()


def _switch_on() -> None:
    global _runs, _built_by_gx, _computed_by_gx, _saved_threshold
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    with _lock:
        _runs += 1
        if _runs > 1:
            return
        _saved_threshold = getattr(engine, "HASH_THRESHOLD", None)
        if _saved_threshold is not None:
            engine.HASH_THRESHOLD = 0
        configuration = Expectation.__dict__.get("configuration")
        if isinstance(configuration, property) and configuration.fget is not None:
            _built_by_gx = configuration
            Expectation.configuration = property(_kept_configuration)  # type: ignore[method-assign,assignment]
        to_id = IDDict.__dict__.get("to_id")
        if callable(to_id):
            _computed_by_gx = to_id
            IDDict.to_id = _kept_id  # type: ignore[method-assign]


def _switch_off() -> None:
    global _runs, _saved_threshold
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    with _lock:
        _runs -= 1
        if _runs > 0:
            return
        if _saved_threshold is not None:
            engine.HASH_THRESHOLD, _saved_threshold = _saved_threshold, None
        installed = Expectation.__dict__.get("configuration")
        if isinstance(installed, property) and installed.fget is _kept_configuration:
            Expectation.configuration = _built_by_gx  # type: ignore[method-assign]
        if IDDict.__dict__.get("to_id") is _kept_id:
            IDDict.to_id = _computed_by_gx  # type: ignore[method-assign]


def _kept_configuration(expectation: Any) -> Any:
    """GX's own property, built once per expectation object during a run on this thread.

    GX's property is read from a module global that is never cleared, so a read that began just
    as the last run restored GX still finds it.
    """
    build = _built_by_gx.fget
    kept: dict[int, tuple[Any, Any]] | None = getattr(_thread, "kept", None)
    if kept is None:  # another thread's GX, outside any run of ours
        return build(expectation)
    hit = kept.get(id(expectation))
    if hit is None or hit[0] is not expectation:
        hit = kept[id(expectation)] = (expectation, build(expectation))
    return hit[1]


def _kept_id(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
    """GX's ``IDDict.to_id``, computed once per content during a run on this thread."""
    compute = _computed_by_gx
    ids: dict[tuple[Any, ...], Any] | None = getattr(_thread, "ids", None)
    if ids is None or id_keys is not None or id_ignore_keys is not None or len(self) < 2:
        return compute(self, id_keys, id_ignore_keys)  # outside a run, or GX's cheap cases
    if not all(type(value) in _ID_SCALARS for value in self.values()):
        return compute(self)
    try:
        content = (type(self), tuple(sorted((name, type(value), value) for name, value in self.items())))
    except TypeError:  # keys that do not sort (GX's are strings)
        return compute(self)
    found = ids.get(content)
    if found is None:
        found = ids[content] = compute(self)
    return found
