"""A replay killed between its transactions: the retry completes it, each row published once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import Endpoints, with_topic
from replay_helpers import audit_records, land_and_ingest, replay_dag, run_replay, wrong_rule

from kafka_ingest.testing.topics import read_topic
from kafka_ingest.topics.orders import ORDERS

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

HERE = Path(__file__).parent


def order(number: int, currency: str) -> dict[str, Any]:
    return {
        "order_number": f"ORD-{number:04d}",
        "user_id": "user-1",
        "status": "CREATED",
        "items": [{"product_id": "P-1", "quantity": 1, "unit_price": "5.00"}],
        "total_price": "5.00",
        "currency": currency,
        "created_at": "2026-01-05T10:00:00Z",
        "coupon_code": "",
    }


def test_sigkill_mid_replay_then_the_retry_completes_it_exactly_once(
    endpoints: Endpoints, unique_name: Callable[[str], str], tmp_path: Path, kafka_bootstrap: str
) -> None:
    topic = unique_name("replaycrash")
    spec = wrong_rule(with_topic(ORDERS, topic), "_currency_allowed", "currency", "JPY")
    rows = [order(n, "JPY" if n % 2 else "USD") for n in range(1, 21)] + [order(99, "GBP")]
    land_and_ingest(endpoints, spec, tmp_path, rows)
    dag_id = unique_name("replay_crash").replace("-", "_")
    conf = {"dataset": "orders", "topic": topic, "replay_id": f"{dag_id}/one", "batch_size": 3}

    child = subprocess.run(
        [
            sys.executable,
            str(HERE / "replay_driver.py"),
            json.dumps({"dag_id": dag_id, "conf": conf, "kill_after_commits": 2}),
        ],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        timeout=600,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-3000:]
    partial = [r.key_text for r in read_topic(kafka_bootstrap, topic) if "dlq.replay_of" in r.headers]
    assert len(partial) in (5, 6), "two batches of three envelopes were committed before the kill"
    assert audit_records(kafka_bootstrap, conf["replay_id"]) == []

    run, report = run_replay(replay_dag(dag_id), **conf)

    assert run.state == "success"
    assert report is not None
    assert (report["counts"]["published"], report["counts"]["still_failing"]) == (10, 1)
    counts = Counter(r.key_text for r in read_topic(kafka_bootstrap, topic))
    assert len(counts) == 20
    assert set(counts.values()) == {1}
    again = [e for e in read_topic(kafka_bootstrap, f"{topic}.dlq") if b'"replay"' in e.value]
    assert len(again) == 1, "the GBP row went back to the DLQ once"
    [audit] = audit_records(kafka_bootstrap, conf["replay_id"])
    assert audit["counts"]["published"] == 10
