"""One orders day through the production DAG (``dag.test()``), seen from outside as an on-call
engineer would: OpenLineage events (``file`` transport), Prometheus series (the real
statsd_exporter with monitoring/statsd_mapping.yml) and the run report. Then the ways lineage must
not hurt a run: switched off, and its transport down.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import DagRun, Exporter, file_transport
from lineage_schema import validate_event

from kafka_ingest.metrics import metric_prefix
from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]

DAY = "2026-01-05"


def _args(name: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "dataset": "payments" if "pay" in name else "orders",
        "dag_id": name.replace("-", "_").replace(".", "_"),
        "topic": name,
        "date": DAY,
        "conf": conf or {"max_dlq_ratio": 0.5},
    }


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DayManifest]:
    root = tmp_path_factory.mktemp("extracts")
    return root, write_day(root, "payments", DAY, rows=400, formats=("csv", "jsonl"), bad_ratio=0.1)


@pytest.fixture(scope="module")
def observed(
    day: tuple[Path, DayManifest],
    statsd_exporter: Exporter,
    run_dag_day: Callable[..., DagRun],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[DagRun, list[dict[str, Any]], str]:
    """The day, run once with lineage to a file and metrics to the exporter."""
    events = tmp_path_factory.mktemp("lineage") / "events.jsonl"
    topic = f"it-obs-payments-{uuid.uuid4().hex[:8]}"
    run = run_dag_day(
        _args(topic),
        {
            "AIRFLOW_VAR_EXTRACTS_ROOT": str(day[0]),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": file_transport(events),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "kafka-ingest-tests",
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd_exporter.statsd_port),
        },
    )
    assert run.result["state"] == "success", run.output[-4000:]
    lines = events.read_text().splitlines() if events.exists() else []
    return run, [json.loads(line) for line in lines], topic


def _publish_events(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["job"]["name"].endswith(".publish") and e["eventType"] == kind]


def test_every_event_is_valid_openlineage(observed: tuple[DagRun, list[dict[str, Any]], str]) -> None:
    _, events, _ = observed

    assert events, "no OpenLineage event was written"
    for event in events:
        validate_event(event)


def test_each_publish_task_reports_its_file_the_topic_and_the_dlq(
    observed: tuple[DagRun, list[dict[str, Any]], str], day: tuple[Path, DayManifest]
) -> None:
    run, events, topic = observed
    complete = _publish_events(events, "COMPLETE")

    assert len(_publish_events(events, "START")) == len(complete) == 2
    assert sorted(e["inputs"][0]["name"] for e in complete) == sorted(str(Path(f)) for f in day[1].files)
    for event in complete:
        assert [o["name"] for o in event["outputs"]] == [topic, f"{topic}.dlq"]
        assert event["outputs"][0]["namespace"].startswith("kafka://127.0.0.1:")
    published = sum(e["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] for e in complete)
    dlq = sum(e["outputs"][1]["outputFacets"]["outputStatistics"]["rowCount"] for e in complete)
    report = run.result["report"]["return_value"]
    assert (
        (published, dlq)
        == (report["published"], report["dlq"])
        == (len(day[1].published), len(day[1].rejected))
    )
    assert all(e["outputs"][0]["outputFacets"]["outputStatistics"]["size"] > 0 for e in complete)


def test_quality_assertions_fail_exactly_for_the_rules_the_day_broke(
    observed: tuple[DagRun, list[dict[str, Any]], str], day: tuple[Path, DayManifest]
) -> None:
    _, events, _ = observed
    broken: dict[str, int] = {}
    for rule in day[1].rejected.values():
        broken[rule] = broken.get(rule, 0) + 1

    failed: dict[str, int] = {}
    for event in _publish_events(events, "COMPLETE"):
        for assertion in event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]:
            if not assertion["success"]:
                failed[assertion["assertion"]] = failed.get(assertion["assertion"], 0) + assertion.get(
                    "failures", 1
                )

    assert set(failed) == set(broken)


def test_events_hold_no_card_number(
    observed: tuple[DagRun, list[dict[str, Any]], str], day: tuple[Path, DayManifest]
) -> None:
    _, events, _ = observed
    text = json.dumps(events)
    cards = set()
    for f in (f for f in day[1].files if f.endswith(".csv")):
        with open(f, newline="", encoding="utf-8-sig") as rows:
            cards |= {
                "".join(ch for ch in (r.get("card_number") or "") if ch.isdigit())
                for r in csv.DictReader(rows)
            }
    cards = {c for c in cards if len(c) >= 12}

    assert cards, "the sample day has card payments"
    assert not [c for c in cards if c in text]


def test_prometheus_series_are_labelled_by_topic_and_match_the_report(
    observed: tuple[DagRun, list[dict[str, Any]], str], statsd_exporter: Exporter
) -> None:
    run, _, topic = observed
    report = run.result["report"]["return_value"]
    label = frozenset({("topic", metric_prefix(topic).removeprefix("kafka_ingest."))})

    def value(name: str) -> float:
        return statsd_exporter.series(name)[label]

    assert value("kafka_ingest_rows_read_total") == report["rows_read"]
    assert value("kafka_ingest_rows_published_total") == report["published"]
    assert value("kafka_ingest_rows_dlq_total") == report["dlq"]
    by_stage = {
        dict(k)["stage"]: v
        for k, v in statsd_exporter.series("kafka_ingest_rows_dlq_by_stage_total").items()
        if label <= k
    }
    assert by_stage == {stage: float(n) for stage, n in report["dlq_by_stage"].items()}
    assert value("kafka_ingest_batches_committed_total") >= 2
    assert value("kafka_ingest_commit_latency_seconds_count") == value("kafka_ingest_batches_committed_total")
    assert (
        value("kafka_ingest_last_day_published_timestamp_seconds")
        == datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    )
    assert value("kafka_ingest_day_dlq_ratio") == pytest.approx(report["dlq"] / report["rows_read"])
    assert value("kafka_ingest_dlq_budget_ratio") == 0.5
    assert not [line for line in statsd_exporter.scrape().splitlines() if "shopping_" in line.split("{")[0]]


def test_run_report_is_written_linked_and_logged(observed: tuple[DagRun, list[dict[str, Any]], str]) -> None:
    run, _, topic = observed
    link = run.result["report"]["_link_RunReportLink"]

    assert link.startswith("file://")
    assert link.endswith("/report.html")
    html = Path(link.removeprefix("file://")).read_text()
    markdown = Path(link.removeprefix("file://")).with_suffix(".md").read_text()
    assert topic in html
    assert "DLQ by rule" in html
    assert markdown.splitlines()[0] in run.output, "the report's Markdown is not in the task log"
    for name in (PurePosixPath(f["file"]).name for f in run.result["report"]["return_value"]["per_file"]):
        assert f"| {name} |" in markdown


def test_lineage_off_changes_nothing_but_the_events(
    day: tuple[Path, DayManifest], run_dag_day: Callable[..., DagRun], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    topic = f"it-obs-off-payments-{uuid.uuid4().hex[:8]}"

    run = run_dag_day(
        _args(topic),
        {
            "AIRFLOW_VAR_EXTRACTS_ROOT": str(day[0]),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": file_transport(events),
            "AIRFLOW__OPENLINEAGE__DISABLED": "true",
        },
    )

    assert run.result["state"] == "success"
    assert run.result["report"]["return_value"]["published"] == len(day[1].published)
    assert not events.exists() or events.read_text() == ""


def test_lineage_transport_down_is_logged_and_the_run_succeeds_without_waiting(
    day: tuple[Path, DayManifest], run_dag_day: Callable[..., DagRun]
) -> None:
    from conftest import free_port

    topic = f"it-obs-down-payments-{uuid.uuid4().hex[:8]}"
    closed = f"http://127.0.0.1:{free_port()}"

    run = run_dag_day(
        _args(topic),
        {
            "AIRFLOW_VAR_EXTRACTS_ROOT": str(day[0]),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "http", "url": closed, "timeout": 2}),
        },
    )

    assert run.result["state"] == "success"
    assert run.result["report"]["return_value"]["published"] == len(day[1].published)
    publish = [s for task, s in run.result["durations"].items() if task.startswith("publish")]
    assert publish
    assert max(publish) < 60, f"publish tasks took {publish}s with the lineage transport down"
