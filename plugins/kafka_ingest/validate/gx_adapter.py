"""Every Great Expectations internal this project touches, checked at start-up, in one module.

The validator (``validate/validator.py``) uses GX's public API to build a suite; two things it
needs are only reachable through GX internals, and both live here:

* :func:`run_suite` runs a suite through GX's ``v1_validator.Validator`` directly.
  ``ValidationDefinition.run`` adds a freshness check of the definition and stores every result
  in the context's results store: part of GX's fixed cost per batch, and an ephemeral store that
  grows with each batch of a long file. Nothing here reads a stored result, so the validator is
  called directly: the same expectations, batch and result format, hence the same results.
* :func:`lighter_gx_run` makes a GX run cheaper without changing what it finds. GX's cost per run
  is almost all fixed (the metric graph it builds for the suite), and the other pipeline stages
  wait for the GIL it holds. Three things in that fixed cost are work whose result nothing here
  uses, or work done again and again for the same answer; they are switched off for the length
  of a run:

  - **the batch fingerprint**: GX stamps every pandas batch with an MD5 over
    ``hash_pandas_object`` of all its cells, kept only as result metadata that nothing here
    reads; on string columns it costs more than all the expectations together. GX skips it above
    a size threshold (``HASH_THRESHOLD``), which is set to 0;
  - **the expectation's configuration, rebuilt on every access**: ``Expectation.configuration``
    is a property that dumps the pydantic model into a fresh ``ExpectationConfiguration`` each
    time it is read, about a thousand times per run. GX makes a run's expectation objects from
    their configurations and none of them changes during the run, so the first configuration
    built for an object is kept, by object, until the run ends;
  - **metric ids, hashed again and again**: GX names every metric configuration by an MD5 over
    the JSON of its domain and value kwargs (``IDDict.to_id``), about a thousand times per run
    for a few distinct dicts. Within a run the id of a dict whose values are all ``str``,
    ``int``, ``bool`` or ``None`` (exact types) is computed by GX once per content, with each
    value's type as part of the content (``1`` and ``True`` name different metrics, as in GX);
    any other dict, and any call with id keys given, goes to GX as before.

  All three are module-level knobs of GX, so runs that overlap in one process share one
  switch-on (the last to end restores GX); what a run keeps belongs to the thread whose run made
  it, so GX used elsewhere in the process meanwhile is not affected.

**After a GX upgrade.** :func:`check_knobs` runs when the first suite is built: every internal
named in :data:`KNOBS` that this GX no longer has is logged as a warning, and the code that would
turn it takes GX's plain path instead (``ValidationDefinition.run``, or GX's own fingerprint,
property or hash): slower, never different. ``tests/unit/validate/test_gx_adapter.py`` fails on
such a GX, so an upgrade cannot make the speed-ups quietly do nothing. Measured effects are in
docs/performance.md.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

#: The GX internals this module turns: knob name -> (module, attribute) it lives at.
KNOBS: dict[str, tuple[str, str]] = {
    "HASH_THRESHOLD": ("great_expectations.execution_engine.pandas_execution_engine", "HASH_THRESHOLD"),
    "Expectation.configuration": ("great_expectations.expectations.expectation", "Expectation"),
    "IDDict.to_id": ("great_expectations.core.id_dict", "IDDict"),
    "Validator": ("great_expectations.validator.v1_validator", "Validator"),
}

_lock = threading.Lock()
_runs = 0
_checked: list[str] | None = None  # the missing knobs, once check_knobs() has looked
_saved_threshold: float | None = None  # GX's fingerprint threshold while a run has it at 0
_built_by_gx: Any = None  # GX's configuration property once seen; never cleared (_kept_configuration)
_computed_by_gx: Any = None  # GX's IDDict.to_id once seen; never cleared (_kept_id)
#: .kept: {id(expectation): (expectation, configuration)} and .ids: {content: metric id}, in a run
_thread = threading.local()
#: Value types whose equality and hash agree with GX's JSON of them (not float: -0.0 == 0.0)
_ID_SCALARS = frozenset({str, int, bool, type(None)})


def _knob(name: str) -> Any:
    """The GX object a knob is turned on, or None when this GX does not have it as expected."""
    module_name, attribute = KNOBS[name]
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return None
    if name == "HASH_THRESHOLD":
        return importlib.import_module(module_name) if isinstance(found, int | float) else None
    if name == "Expectation.configuration":
        configuration = found.__dict__.get("configuration")
        return found if isinstance(configuration, property) and configuration.fget is not None else None
    if name == "IDDict.to_id":
        return found if callable(found.__dict__.get("to_id")) else None
    return found if callable(getattr(found, "validate_expectation_suite", None)) else None


def missing_knobs() -> list[str]:
    """The knobs of :data:`KNOBS` this GX does not have (empty on the GX we pin)."""
    return [name for name in KNOBS if _knob(name) is None]


def check_knobs() -> list[str]:
    """Look once per process for every knob; warn about each one missing (it takes GX's plain path)."""
    global _checked
    with _lock:
        if _checked is None:
            _checked = missing_knobs()
            for name in _checked:
                log.warning(
                    "Great Expectations has no %s as this project expects (module %s): validation "
                    "takes GX's plain, slower path for it. See kafka_ingest/validate/gx_adapter.py.",
                    name,
                    KNOBS[name][0],
                )
        return list(_checked)


def run_suite(definition: Any, frame: Any, result_format: dict[str, Any]) -> Any:
    """The suite of ``definition`` over ``frame``, through GX's validator when it has one."""
    validator_class = _knob("Validator")
    if validator_class is None:
        return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
    validator = validator_class(
        batch_definition=definition.batch_definition,
        batch_parameters={"dataframe": frame},
        result_format=result_format,
    )
    return validator.validate_expectation_suite(definition.suite)


@contextmanager
def lighter_gx_run() -> Iterator[None]:
    """For the length of a GX run on this thread: no batch fingerprint, each configuration built
    once, each metric id hashed once per content (each only where GX has the knob)."""
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
    engine, expectation, id_dict = (
        _knob("HASH_THRESHOLD"),
        _knob("Expectation.configuration"),
        _knob("IDDict.to_id"),
    )
    with _lock:
        _runs += 1
        if _runs > 1:
            return
        if engine is not None:
            _saved_threshold = engine.HASH_THRESHOLD
            engine.HASH_THRESHOLD = 0
        if expectation is not None:
            _built_by_gx = expectation.__dict__["configuration"]
            expectation.configuration = property(_kept_configuration)
        if id_dict is not None:
            _computed_by_gx = id_dict.__dict__["to_id"]
            id_dict.to_id = _kept_id


def _switch_off() -> None:
    global _runs, _saved_threshold
    engine, expectation, id_dict = (
        _knob("HASH_THRESHOLD"),
        _knob("Expectation.configuration"),
        _knob("IDDict.to_id"),
    )
    with _lock:
        _runs -= 1
        if _runs > 0:
            return
        if engine is not None and _saved_threshold is not None:
            engine.HASH_THRESHOLD, _saved_threshold = _saved_threshold, None
        if expectation is not None and expectation.__dict__["configuration"].fget is _kept_configuration:
            expectation.configuration = _built_by_gx
        if id_dict is not None and id_dict.__dict__.get("to_id") is _kept_id:
            id_dict.to_id = _computed_by_gx


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
