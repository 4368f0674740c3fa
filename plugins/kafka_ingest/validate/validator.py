"""Run a topic's rules with Great Expectations, one batch at a time.

A spec declares its rules as data (:class:`~kafka_ingest.specs.Rule`); this module turns them into
one GX Core expectation suite per spec, built lazily on first use (importing GX alone costs
seconds) and reused for every batch, because a validation run has a fixed cost of tens of
milliseconds: validate large batches, not single rows.

Row rules run with ``result_format="COMPLETE"``, so GX reports every failing row, never a sample;
its ``unexpected_index_list`` holds index labels, which are row positions because the frame is
validated with a fresh ``RangeIndex``. GX skips nulls in column-map expectations, so a null must
never be able to pass: the topic specs check derived boolean columns (``value_set=[True]``) that
are never null, and the validator refuses a batch in which one is; a rule on a raw column needs a
companion ``expect_column_values_to_not_be_null`` rule (see ``test_validation``'s toy spec). GX only
sees the columns the rules read, which also keeps its per-batch cost down.

Batch rules (the frame has every column the rules need, plus the spec's ``batch_rules``) do not
reject rows: they fail the file with :class:`BatchRuleError`, as does a row rule that GX could not
evaluate at all, since a file half-checked must not be published.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kafka_ingest.errors import PermanentError
from kafka_ingest.specs import Rule, TopicSpec
from kafka_ingest.validate.dedup import FIRST_OCCURRENCE_COLUMN
from kafka_ingest.validate.gx_adapter import check_knobs, lighter_gx_run, run_suite

KEY_UNIQUE_RULE = "key_unique_in_day"
COLUMNS_PRESENT_RULE = "columns_present"
_RESULT_FORMAT = {"result_format": "COMPLETE"}
_names = itertools.count()


class BatchRuleError(PermanentError):
    """A batch-level rule failed: the file must not be published. Names the rules, never values.

    A retry cannot help (the file is what it is), so the task fails at once. Batch rules judge
    each read batch; the columns they usually check are the file's header, so the first batch
    fails before anything of the file is published.
    """

    def __init__(self, dataset: str, rules: Iterable[str], reason: str = "failed"):
        self.dataset = dataset
        self.rules = tuple(rules)
        super().__init__(f"{dataset}: batch rule(s) {', '.join(self.rules)}: {reason}")


@dataclass
class ValidationOutcome:
    """``valid[i]`` for each row position; ``failed_rules`` maps each invalid position to rule names."""

    valid: np.ndarray
    failed_rules: dict[int, tuple[str, ...]]


def row_rules(spec: TopicSpec) -> tuple[Rule, ...]:
    """The spec's row rules, plus EXTRACTS.md's duplicate rule for specs with a unique key."""
    if not spec.unique_key:
        return spec.rules
    unique = Rule(
        KEY_UNIQUE_RULE,
        "expect_column_values_to_be_in_set",
        {"column": FIRST_OCCURRENCE_COLUMN, "value_set": [True]},
    )
    return (*spec.rules, unique)


def rule_columns(rules: Iterable[Rule]) -> set[str]:
    """The columns the rules read (their ``column`` argument)."""
    return {rule.kwargs["column"] for rule in rules if "column" in rule.kwargs}


def batch_rules(spec: TopicSpec) -> tuple[Rule, ...]:
    """Every column the row rules read must exist, then the spec's own batch rules."""
    needed = set(spec.columns) | rule_columns(row_rules(spec))
    present = Rule(
        COLUMNS_PRESENT_RULE,
        "expect_table_columns_to_match_set",
        {"column_set": sorted(needed), "exact_match": False},
    )
    return (present, *spec.batch_rules)


def _flag_columns(rules: Iterable[Rule]) -> tuple[str, ...] | None:
    """The columns of ``rules`` when all are plain flag rules (``in_set [True]``), else None."""
    columns = []
    for rule in rules:
        kwargs = dict(rule.kwargs)
        if rule.expectation != "expect_column_values_to_be_in_set" or set(kwargs) != {"column", "value_set"}:
            return None
        if list(kwargs["value_set"]) != [True]:
            return None
        columns.append(str(kwargs["column"]))
    return tuple(columns)


class BatchValidator:
    """Validates prepared batches of one spec; GX objects are created on first use, then reused."""

    def __init__(self, spec: TopicSpec):
        self.spec = spec
        self._row_rules = row_rules(spec)
        self._batch_rules = batch_rules(spec)
        self._read = set(spec.columns) | rule_columns(self._row_rules)
        self._flags = None if spec.batch_rules else _flag_columns(self._row_rules)
        self._definition: Any = None

    def validate(self, frame: pd.DataFrame) -> ValidationOutcome:
        """Check one prepared batch; raises :class:`BatchRuleError` if a batch rule fails."""
        frame = frame[[c for c in frame.columns if c in self._read]].reset_index(drop=True)
        self._check_flags(frame)
        if self._definition is None:
            self._definition = self._build()
        with lighter_gx_run():
            result = self._run(frame)
        return self._outcome(result.results, len(frame))

    def _run(self, frame: pd.DataFrame) -> Any:
        """The suite over ``frame``, without storing its results (see ``gx_adapter.run_suite``)."""
        return run_suite(self._definition, frame, _RESULT_FORMAT)

    def validate_rows_that_can_fail(self, frame: pd.DataFrame) -> ValidationOutcome:
        """:meth:`validate`'s outcome, with GX run only on the rows that can fail.

        When every row rule is a flag rule (``in_set [True]`` on a column ``prepare`` derived, the
        framework's convention) and the spec has no batch rules of its own, a row with all flags
        True passes every expectation, so only the others go through GX: the outcome is the same
        and GX's per-row cost drops to the ~1 % of rows that fail. Otherwise GX sees the batch.
        """
        return self.validate_together([frame])[0]

    def validate_together(self, frames: list[pd.DataFrame]) -> list[ValidationOutcome]:
        """:meth:`validate_rows_that_can_fail` for each frame, with one GX run for all of them.

        GX's cost per run is almost all fixed (building and resolving the metric graph of the
        suite, whether 500 rows or 5,000 reach it): the rows that can fail of several batches
        are validated as one frame, and each frame gets its own outcome back, by position. Row
        rules judge each row alone, so the outcome is the same as batch by batch. When GX must see
        whole batches (batch rules, rules on raw columns), each frame is validated on its own.
        """
        flags = self._flags
        if not frames or flags is None or not all(set(flags) <= set(f.columns) for f in frames):
            return [self.validate(frame) for frame in frames]
        candidates = [
            np.flatnonzero(~np.logical_and.reduce([f[c].isin([True]).to_numpy(dtype=bool) for c in flags]))
            for f in frames
        ]
        checked = self.validate(
            pd.concat([f.iloc[rows] for f, rows in zip(frames, candidates, strict=True)], ignore_index=True)
        )
        outcomes, start = [], 0
        for frame, rows in zip(frames, candidates, strict=True):
            stop = start + len(rows)
            valid = np.ones(len(frame), dtype=bool)
            valid[rows] = checked.valid[start:stop]
            failed = {
                int(rows[position - start]): rules
                for position, rules in checked.failed_rules.items()
                if start <= position < stop
            }
            outcomes.append(ValidationOutcome(valid, failed))
            start = stop
        return outcomes

    def _check_flags(self, frame: pd.DataFrame) -> None:
        """A null in a ``value_set=[True]`` flag column would be skipped by GX, i.e. pass: refuse."""
        broken = [
            rule.name
            for rule in self._row_rules
            if list(rule.kwargs.get("value_set", ())) == [True]
            and rule.kwargs.get("column") in frame.columns
            and frame[rule.kwargs["column"]].isna().any()
        ]
        if broken:
            raise BatchRuleError(self.spec.dataset, broken, "null in the rule's boolean column")

    def _build(self) -> Any:
        """An ephemeral context with a pandas asset, the suite and its validation definition."""
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        check_knobs()
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        name = f"{self.spec.dataset}_{next(_names)}"
        asset = context.data_sources.add_pandas(name).add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe(name)
        suite = context.suites.add(gx.ExpectationSuite(name=name))
        for rule in (*self._batch_rules, *self._row_rules):
            suite.add_expectation(_expectation(rule))
        return context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))

    def _outcome(self, results: list[Any], rows: int) -> ValidationOutcome:
        batch_names = {rule.name for rule in self._batch_rules}
        broken: list[str] = []
        failing: dict[str, list[np.ndarray]] = {}
        for result in results:
            rule = result.expectation_config.meta["rule"]
            if _raised(result.exception_info) or (rule in batch_names and not result.success):
                broken.append(rule)
            elif not result.success:
                positions = np.asarray(result.result["unexpected_index_list"], dtype=np.int64)
                failing.setdefault(rule, []).append(positions)
        if broken:
            raise BatchRuleError(self.spec.dataset, dict.fromkeys(broken))
        return _collect(failing, [rule.name for rule in self._row_rules], rows)


def _collect(failing: dict[str, list[np.ndarray]], order: list[str], rows: int) -> ValidationOutcome:
    """Per failing position, its rule names in declaration order (each name once)."""
    valid = np.ones(rows, dtype=bool)
    failed: dict[int, list[str]] = {}
    for name in dict.fromkeys(order):
        if name not in failing:
            continue
        positions = np.unique(np.concatenate(failing[name]))
        valid[positions] = False
        for position in positions.tolist():
            failed.setdefault(position, []).append(name)
    return ValidationOutcome(valid, {position: tuple(names) for position, names in failed.items()})


def _expectation(rule: Rule) -> Any:
    from great_expectations.expectations.registry import get_expectation_impl

    return get_expectation_impl(rule.expectation)(**dict(rule.kwargs), meta={"rule": rule.name})


def _raised(info: Any) -> bool:
    """Whether GX caught an exception evaluating the expectation (e.g. a missing column)."""
    if not info:
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(value, dict) and value.get("raised_exception") for value in info.values())
