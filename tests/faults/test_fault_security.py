"""After faults, no card number and no registry secret anywhere the runs wrote.

A payments day (a card number on every CARD row, Luhn-valid and Luhn-failing alike) is published
through two faults in a row, with a basic-auth password on the registry client (the private
Apicurio has auth off, so it is sent and ignored):

1. attempt 1 runs in a child and is SIGKILLed with its second transaction open on the broker
   (records flushed, commit not sent): what it wrote is aborted, never committed;
2. attempt 2 reaches the broker through the fault proxy, which cuts the connection carrying the
   answer to a commit: the client cannot know whether that batch is in;
3. attempt 3 finishes on a healthy broker.

Then every card number of the day and the password are searched for (digits with or without
separators, inside longer digit runs too) in every record, key and header of the topic, its DLQ
and the checkpoint topic read *uncommitted* (so what the aborted transactions wrote counts too),
in every log record and everything written to file descriptors 1 and 2 by the in-process
attempts (where librdkafka logs), in the failed attempts' errors and in the summaries.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FAST_TIMEOUTS,
    Attempt,
    Child,
    after_commits,
    assert_checkpoints_complete,
    assert_exactly_once,
    crash_run,
    driver_args,
    run_attempt,
    spec_for,
    timed,
)
from ingest_helpers import DATE, Endpoints, read_topic, source_rows
from stack import FaultStack

from kafka_ingest.testing.samples import write_day

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inputs.helpers import leaks  # tests/ is not a package; tests/inputs is

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS, BATCH = 1200, 200
REGISTRY_PASSWORD = "Reg1stry-s3cret-under-faults"  # a test secret, searched for


def test_no_card_number_or_registry_secret_leaks_through_a_killed_try_a_cut_commit_and_the_retry(
    stack: FaultStack,
    endpoints: Endpoints,
    proxied: Endpoints,
    tmp_path: Path,
    unique_name: Any,
    children: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    topic = unique_name("payments")
    manifest = write_day(tmp_path, "payments", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.05, seed=5)
    rows = [row for f in manifest.files for row in source_rows(f)]
    cards = sorted({row["card_number"] for row in rows if row["card_number"]})
    assert sum(1 for row in rows if row["card_number"]) > ROWS // 4, "card numbers on many rows"
    assert len(cards) >= 3, cards
    secrets = [*cards, REGISTRY_PASSWORD]
    registry = {"basic.auth.user.info": f"ingest:{REGISTRY_PASSWORD}"}

    def attempt(where: Endpoints, run_id: str, try_number: int, **kw: Any) -> Attempt:
        return Attempt(
            where, topic, tuple(manifest.files), run_id, dataset="payments", batch_size=BATCH,
            try_number=try_number, registry=registry, **kw,
        )  # fmt: skip

    first = attempt(endpoints, "attempt-1", 1)
    killed = Child(children, crash_run, driver_args(first, kill_in_transaction=1))
    assert killed.wait() == -signal.SIGKILL, killed.result()

    after_commits(2, lambda: stack.kafka.proxy.cut_on_commit("response"), monkeypatch)
    second, _ = timed(
        lambda: run_attempt(attempt(proxied, "attempt-2", 2, timeout_s=3.0, producer=FAST_TIMEOUTS))
    )
    monkeypatch.undo()
    assert stack.kafka.proxy.stats.commit_cuts == ["response"]

    final = run_attempt(attempt(endpoints, "attempt-3", 3))
    assert isinstance(final, dict), repr(final)
    outcome = assert_exactly_once(endpoints, "payments", topic, manifest)
    assert_checkpoints_complete(endpoints, "payments", topic, manifest)
    assert outcome.dlq, "the day's bad rows (some with card numbers) should be on the DLQ"

    written: list[str] = []
    for name in (topic, spec_for("payments", topic).dlq_topic, endpoints.checkpoint_topic):
        records = read_topic(endpoints.bootstrap, name, isolation="read_uncommitted")
        assert records, f"{name} is empty: nothing to scan"
        for record in records:
            written.append(record.value.decode("latin-1"))
            written.append((record.key or b"").decode("latin-1"))
            written.extend(f"{k}={v.decode('latin-1')}" for k, v in record.raw_headers)
    output = capfd.readouterr()
    scanned = {
        "records, keys and headers (uncommitted too)": "\n".join(written),
        "log records": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "stdout/stderr": output.out + output.err,
        "errors of the failed attempts": f"{killed.result()!r} {second!r}",
        "summaries": json.dumps([second, final], default=str),
    }
    found = {where: leaks(text, secrets) for where, text in scanned.items()}
    assert {where: hits for where, hits in found.items() if hits} == {}
    # the checks can see a leak: the cards are in the extract and the password in the client config
    assert leaks(Path(manifest.files[0]).read_text(), cards)
    assert leaks(json.dumps(registry), [REGISTRY_PASSWORD])
