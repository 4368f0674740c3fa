"""Which day a published record belongs to, and where the scan for it starts."""

from __future__ import annotations

from kafka_ingest.replay.published import SLACK, day_of, lower_bound_ms


def test_day_comes_from_the_dt_folder_of_the_source_file() -> None:
    assert day_of("s3://b/orders/dt=2026-01-05/part-0001.csv", {}) == "2026-01-05"


def test_files_outside_the_layout_take_the_day_of_their_envelopes() -> None:
    assert day_of("/tmp/x/part-1.csv", {"2026-01-07": {"/tmp/x/part-1.csv"}}) == "2026-01-07"
    assert day_of("/tmp/y/part-1.csv", {"2026-01-07": {"/tmp/x/part-1.csv"}}) is None


def test_scan_starts_a_slack_before_the_earlier_of_day_start_and_first_envelope() -> None:
    day_start = 1_767_571_200_000  # 2026-01-05T00:00Z
    slack = int(SLACK.total_seconds() * 1000)
    assert lower_bound_ms({"2026-01-05"}, day_start + 5_000) == day_start - slack
    assert lower_bound_ms({"2026-01-05"}, day_start - 10_000) == day_start - 10_000 - slack
    assert lower_bound_ms(set(), None) == 0
