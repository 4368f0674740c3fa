"""The replay's report: counts by outcome, a summary that says what happened, and its audit form."""

from __future__ import annotations

from kafka_ingest.replay.checkpoint import ReplayCheckpoint
from kafka_ingest.replay.report import ReplayReport


def report(dry_run: bool = False) -> ReplayReport:
    return ReplayReport(
        "r1", "t", dry_run, "anna", "2026-01-06T00:00:00+00:00", {"keys": []}, {"kind": "original"}
    )


def test_counts_follow_the_outcomes_and_skipped_records_are_not_selected() -> None:
    r = report()
    r.add("published", selected=True, dlq="t.dlq:0:1", key="K1")
    r.add("still failing", selected=True, dlq="t.dlq:0:2", key="K2", reason="failed currency_allowed")
    r.add("skipped: unreadable", selected=False, dlq="t.dlq:0:3", reason="not valid JSON")
    counts = r.as_dict()["counts"]
    assert (
        counts["selected"],
        counts["published"],
        counts["still_failing"],
        counts["skipped_unreadable"],
    ) == (
        2,
        1,
        1,
        1,
    )
    assert "1 DLQ record(s) skipped" in r.summary()


def test_an_empty_selection_says_so() -> None:
    assert "matched no envelope: nothing to replay" in report().summary()


def test_a_dry_run_says_nothing_was_published() -> None:
    r = report(dry_run=True)
    r.add("published", selected=True, dlq="t.dlq:0:1")
    assert "1 would be published (dry run: nothing was)" in r.summary()


def test_audit_record_keeps_counts_and_selection_but_no_envelope_lines() -> None:
    r = report()
    r.add("published", selected=True, dlq="t.dlq:0:1", key="K1")
    audit = r.audit_record(dag_id="d", run_id="run", task_id="replay")
    assert audit["who"] == "anna"
    assert audit["counts"]["published"] == 1
    assert audit["dlq_topic"] == "t.dlq"
    assert "envelopes" not in audit
    assert audit["selection"] == {"keys": []}


def test_checkpoint_round_trips_with_integer_partitions() -> None:
    checkpoint = ReplayCheckpoint("r1", "t", {0: 5, 2: 7}, {1: 9}, "now", done=3)
    again = ReplayCheckpoint.from_json(checkpoint.to_json())
    assert (again.dlq_ends, again.topic_ends, again.done, again.key) == (
        {0: 5, 2: 7},
        {1: 9},
        3,
        "replay/t/r1",
    )
