"""Each candidate row judged again: the topic's current rules, the day's duplicate rule, Avro.

The rules are the spec's, run through the same :class:`BatchValidator` and encoder as ingestion,
so a rule fixed in the spec is the rule a replay applies. Two things differ from ingestion:

* **The duplicate rule** spans what is already on the topic: a key already published for its day
  is not published again (``skipped: already published``), and among the rows replayed together
  the first in (date, file, row) order is the day's first occurrence.
* **Masked columns** (the card number) are held in the DLQ masked, so their rules cannot be run
  again. Which rules read such a column is found by running ``prepare`` with three stand-ins for
  the value (a Luhn-valid number ending in the masked value's last four digits, junk, nothing):
  a rule whose flag changes with the stand-in reads the column. Those rules count as passed only
  if they are not among the envelope's ``failed_rules``; otherwise the row needs a correction.
  The record's ``card_last4`` comes from the valid stand-in, i.e. from the masked value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kafka_ingest.dedup import FIRST_OCCURRENCE_COLUMN
from kafka_ingest.encoding import TableEncoder
from kafka_ingest.pan import luhn_valid
from kafka_ingest.replay.candidates import Candidate
from kafka_ingest.specs import Stage, TopicSpec
from kafka_ingest.validation import BatchValidator, row_rules

PUBLISHED = "published"
STILL_FAILING = "still failing"
NEEDS_CORRECTION = "needs a correction"
ALREADY_PUBLISHED = "skipped: already published"

_NOT_DIGIT = re.compile(r"[^0-9]")


@dataclass
class Verdict:
    """What happens to one candidate; ``value`` is the encoded record when it is published."""

    outcome: str
    reason: str = ""
    stage: str = ""
    error_type: str = ""
    rules: tuple[str, ...] = ()
    value: bytes | None = None


def judge(
    spec: TopicSpec,
    candidates: Sequence[Candidate],
    *,
    validator: BatchValidator,
    encoder: TableEncoder,
    published: Collection[tuple[str, str]],
) -> list[Verdict]:
    """One verdict per candidate, in order. ``published``: the (date, key) pairs already on the topic."""
    verdicts: list[Verdict | None] = [None] * len(candidates)
    for index, candidate in enumerate(candidates):
        if candidate.needs_correction is not None:
            verdicts[index] = Verdict(NEEDS_CORRECTION, candidate.needs_correction)
        elif (candidate.envelope.date, _key(spec, candidate)) in published:
            verdicts[index] = Verdict(
                ALREADY_PUBLISHED, f"key already published for {candidate.envelope.date}"
            )
    live = [i for i, verdict in enumerate(verdicts) if verdict is None]
    if live:
        for index, verdict in zip(
            live, _judge_rows(spec, [candidates[i] for i in live], validator, encoder), strict=True
        ):
            verdicts[index] = verdict
    return [v for v in verdicts if v is not None]


def _judge_rows(
    spec: TopicSpec, rows: Sequence[Candidate], validator: BatchValidator, encoder: TableEncoder
) -> list[Verdict]:
    frame = pd.DataFrame([c.row for c in rows], columns=list(spec.all_columns), dtype=object)
    if spec.unique_key:
        frame[FIRST_OCCURRENCE_COLUMN] = first_occurrences(spec, rows)
    prepared, masked = prepare_with_masks(spec, frame, rows)
    verdicts: list[Verdict | None] = [None] * len(rows)
    for position, reason in masked.items():
        verdicts[position] = Verdict(NEEDS_CORRECTION, reason)
    judged = np.array([v is None for v in verdicts], dtype=bool)
    positions = np.flatnonzero(judged)
    if len(positions):
        subset = prepared.iloc[positions].reset_index(drop=True)
        outcome = validator.validate_together([subset])[0]
        for local, rules in outcome.failed_rules.items():
            verdicts[int(positions[local])] = Verdict(
                STILL_FAILING, f"failed {', '.join(rules)}", str(Stage.VALIDATE), "ExpectationFailed", rules
            )
        valid = np.flatnonzero(outcome.valid)
        values, errors = encoder.encode_table(spec.to_table(subset.iloc[valid].reset_index(drop=True)))
        failed = {index: (kind, message) for index, kind, message in errors}
        for local_valid, value in enumerate(values):
            position = int(positions[valid[local_valid]])
            if local_valid in failed:
                kind, message = failed[local_valid]
                verdicts[position] = Verdict(STILL_FAILING, message, str(Stage.SERIALIZE), kind)
            else:
                verdicts[position] = Verdict(PUBLISHED, value=value)
    return [v for v in verdicts if v is not None]


def first_occurrences(spec: TopicSpec, rows: Sequence[Candidate]) -> np.ndarray:
    """The replay's own duplicate rule: per (date, key), the first row in (file, row) order."""
    first = np.ones(len(rows), dtype=bool)
    seen: set[tuple[str, str]] = set()
    for position in sorted(range(len(rows)), key=lambda i: rows[i].envelope.order()):
        key = _key(spec, rows[position])
        if not key:
            continue
        day_key = (rows[position].envelope.date, key)
        first[position] = day_key not in seen
        seen.add(day_key)
    return first


def prepare_with_masks(
    spec: TopicSpec, frame: pd.DataFrame, rows: Sequence[Candidate]
) -> tuple[pd.DataFrame, dict[int, str]]:
    """``spec.prepare`` over the rows, masked columns of originals judged as the module says.

    Returns the prepared frame and, by position, the rows that need a correction.
    """
    flags = _flag_columns(spec)
    needs: dict[int, str] = {}
    prepared = None
    for column in spec.masked_columns:
        if column not in frame.columns:
            continue
        held = [
            i
            for i, c in enumerate(rows)
            if c.from_original and isinstance(frame.at[i, column], str) and frame.at[i, column].strip()
        ]
        if not held:
            continue
        stand_ins = {i: stand_in(str(frame.at[i, column])) for i in held}
        valid, junk, absent = frame.copy(), frame.copy(), frame.copy()
        for i, value in stand_ins.items():
            valid.at[i, column], junk.at[i, column], absent.at[i, column] = value, "x", None
        prepared, with_junk, without = spec.prepare(valid), spec.prepare(junk), spec.prepare(absent)
        for i in held:
            reads = [
                rule
                for rule, flag in flags.items()
                if prepared.at[i, flag] != with_junk.at[i, flag]
                or prepared.at[i, flag] != without.at[i, flag]
            ]
            failed_before = [rule for rule in reads if rule in rows[i].envelope.failed_rules]
            if failed_before or stand_ins[i] is None:
                held_as = f"{column} is held masked in the DLQ"
                needs[i] = (
                    f"{held_as} and failed {', '.join(failed_before)} when first read"
                    if failed_before
                    else f"{held_as} without its last four digits"
                )
                continue
            for rule in reads:
                prepared.at[i, flags[rule]] = True
        frame = valid
    return (prepared if prepared is not None else spec.prepare(frame)), needs


def stand_in(masked: str) -> str | None:
    """A Luhn-valid number as long as the masked one, ending in its last four digits (None when
    the masked value shows no four digits)."""
    digits = _NOT_DIGIT.sub("", masked)
    if len(digits) != 4:
        return None
    length = min(max(masked.count("*") + 4, 12), 19)
    for check in "0123456789":
        number = "4" + "0" * (length - 6) + check + digits
        if luhn_valid(number):
            return number
    return None  # unreachable: one digit at a fixed place takes every residue mod 10


def _flag_columns(spec: TopicSpec) -> dict[str, str]:
    """Rule name -> its boolean column, for the flag rules (``in_set [True]``)."""
    return {
        rule.name: str(rule.kwargs["column"])
        for rule in row_rules(spec)
        if rule.expectation == "expect_column_values_to_be_in_set"
        and list(rule.kwargs.get("value_set", ())) == [True]
        and "column" in rule.kwargs
    }


def _key(spec: TopicSpec, candidate: Candidate) -> str:
    value = (candidate.row or {}).get(spec.key_field) if candidate.row is not None else candidate.envelope.key
    return value.strip() if isinstance(value, str) else ""
