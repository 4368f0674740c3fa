"""monitoring/: the statsd_exporter mapping (with the real exporter), the alert rules (promtool
when it was built, their structure always) and the Grafana dashboard."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Exporter

MONITORING = REPO / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
MAPPING = MONITORING / "statsd_mapping.yml"


def _send(exporter: Exporter, *lines: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for line in lines:
            sock.sendto(line.encode(), ("127.0.0.1", exporter.statsd_port))


def test_every_name_the_code_sends_maps_to_a_topic_labelled_series(statsd_exporter: Exporter) -> None:
    topic = "it_map_" + os.urandom(4).hex()
    p = f"airflow.kafka_ingest.{topic}"
    _send(
        statsd_exporter,
        f"{p}.rows_read:10|c",
        f"{p}.rows_published:7|c",
        f"{p}.rows_dlq:3|c",
        f"{p}.rows_dlq.validate:2|c",
        f"{p}.rows_dlq.read:1|c",
        f"{p}.batches_aborted:1|c",
        f"{p}.commit_latency:250|ms",
        f"{p}.producer.request_latency_ms:4.5|g",
        f"{p}.producer.buffer_available:99000|g",
        f"{p}.last_day_published:1767571200|g",
    )
    label = frozenset({("topic", topic)})
    deadline = time.monotonic() + 10
    while label not in statsd_exporter.series("kafka_ingest_last_day_published_timestamp_seconds"):
        assert time.monotonic() < deadline, "statsd_exporter did not map the lines"
        time.sleep(0.2)

    assert statsd_exporter.series("kafka_ingest_rows_read_total")[label] == 10
    assert (
        statsd_exporter.series("kafka_ingest_rows_dlq_by_stage_total")[label | {("stage", "validate")}] == 2
    )
    assert statsd_exporter.series("kafka_ingest_batches_aborted_total")[label] == 1
    assert statsd_exporter.series("kafka_ingest_commit_latency_seconds_sum")[label] == 0.25
    assert statsd_exporter.series("kafka_ingest_producer_request_latency_ms")[label] == 4.5
    assert statsd_exporter.series("kafka_ingest_producer_buffer_available")[label] == 99000
    assert not [line for line in statsd_exporter.scrape().splitlines() if topic in line.split("{")[0]]


def _metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\bkafka_ingest_[a-z_]+\b", expr))


def _mapped_names() -> set[str]:
    names = set()
    for mapping in yaml.safe_load(MAPPING.read_text())["mappings"]:
        name = mapping["name"]
        if "${2}" in name:  # producer gauges: one per statistic metrics.producer_gauges sends
            from kafka_ingest.metrics import producer_gauges

            names |= {name.replace("${2}", stat) for stat in producer_gauges({}, 0.0)}
        elif name.endswith("_latency_seconds"):  # timers: histograms
            names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def test_alert_rules_have_the_four_alerts_with_runbooks_and_known_series() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]

    assert {r["alert"] for r in rules} == {
        "KafkaIngestDlqShareHigh",
        "KafkaIngestDayNotPublished",
        "KafkaIngestTransactionsAborting",
        "KafkaIngestProducerErrors",
    }
    docs = (REPO / "docs" / "observability.md").read_text().lower()
    for rule in rules:
        assert _metric_names_in(rule["expr"]) <= _mapped_names(), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])
        assert f"### {rule['alert'].lower()}" in docs, (
            f"docs/observability.md has no section for {rule['alert']}"
        )


def test_dashboard_queries_only_mapped_series_and_covers_the_asked_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]

    assert set().union(*map(_metric_names_in, exprs)) <= _mapped_names()
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in ("rows/s", "dlq by stage", "commit latency", "request latency", "buffer"):
        assert needed in titles


def _promtool() -> Path | None:
    path = Path(os.environ.get("PROMETHEUS_TOOLS", Path.home() / ".cache/kafka-ingest/go/bin")) / "promtool"
    return path if os.access(path, os.X_OK) else None


@pytest.mark.skipif(
    _promtool() is None and os.environ.get("CI", "").lower() != "true",
    reason="promtool not built: `scripts/monitoring-tools promtool` (a long build; .ci/run does it)",
)
def test_promtool_checks_the_rules_and_their_unit_tests() -> None:
    path = _promtool()
    assert path is not None, "CI needs promtool: `scripts/monitoring-tools promtool` must run first"
    promtool = str(path)

    check = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    unit = subprocess.run(
        [promtool, "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=MONITORING,
    )

    assert check.returncode == 0, check.stdout + check.stderr
    assert unit.returncode == 0, unit.stdout + unit.stderr
