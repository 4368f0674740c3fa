"""The selection: every criterion optional, AND between them, any-of within one; no loops."""

from __future__ import annotations

import pytest
from _envelopes import envelope

from kafka_ingest.replay.errors import ReplayInputError
from kafka_ingest.replay.selection import Selection, select


def test_empty_selection_takes_every_current_envelope() -> None:
    assert len(select([envelope(0), envelope(1)], Selection(), "me")) == 2


@pytest.mark.parametrize(
    ("selection", "taken"),
    [
        (Selection(date_from="2026-01-05", date_to="2026-01-05"), True),
        (Selection(date_from="2026-01-06"), False),
        (Selection(date_to="2026-01-04"), False),
        (Selection(stages=("validate",)), True),
        (Selection(stages=("read",)), False),
        (Selection(rules=("status_allowed", "currency_allowed")), True),
        (Selection(rules=("status_allowed",)), False),
        (Selection(error_types=("ExpectationFailed",)), True),
        (Selection(files=("part-0001.csv",)), True),
        (Selection(files=("/x/orders/dt=2026-01-05/part-0001.csv",)), True),
        (Selection(files=("part-0002.csv",)), False),
        (Selection(keys=("ORD-1",)), True),
        (Selection(keys=("ORD-2",)), False),
        (Selection(stages=("validate",), keys=("ORD-2",)), False),
    ],
)
def test_each_criterion_filters(selection: Selection, taken: bool) -> None:
    assert bool(select([envelope()], selection, "me")) is taken


def test_params_accept_lists_or_comma_separated_text_and_blanks_mean_any() -> None:
    selection = Selection.from_params(
        {"rules": "a, b,,a", "keys": ["K1", " "], "date_from": "", "stages": None}
    )
    assert (selection.rules, selection.keys, selection.date_from, selection.stages) == (
        ("a", "b"),
        ("K1",),
        None,
        (),
    )


def test_a_date_that_is_not_a_date_is_refused() -> None:
    with pytest.raises(ReplayInputError, match="date_from"):
        Selection(date_from="05/01/2026")


def test_envelopes_written_by_the_same_replay_are_never_taken() -> None:
    own = envelope(5, replay={"id": "me", "count": 1, "of": {"topic": "x", "partition": 0, "offset": 0}})
    assert select([own], Selection(), "me") == []


def test_an_envelope_replayed_and_dead_lettered_again_is_superseded_by_the_newer_one() -> None:
    first = envelope(0)
    again = envelope(4, replay={"id": "r1", "count": 1, "of": first.ref.as_dict()})
    assert select([first, again], Selection(), "r2") == [again]
