"""Adding a topic as a data engineer does: scaffold it in a copy of the repo, fill it in, run it.

Each test copies the project's tracked files (not the DAGs: ``dags/`` starts empty, so running
the new DAG registers no other DAG in the shared metadata DB) into a fresh git repository, runs
``python -m kafka_ingest scaffold`` there, and runs what it made in subprocesses whose working
directory and ``PYTHONPATH`` are the copy, against the local stack. git then says what a person
wrote by hand and proves that the core package (``plugins/kafka_ingest/``) was never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S
from kafka_ingest.testing.topics import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
COPIED = ("plugins/", "schemas/", "samples/", "tests/", "pyproject.toml", ".gitignore")
CORE = "plugins/kafka_ingest"
DAY = "2026-01-01"
MAX_HAND_WRITTEN_LINES = 30
REFUND_COLUMNS = "refund_number,order_number,amount,reason"


class RepoCopy:
    """The project's tracked files in a git repository of their own, and commands run inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str) -> str:
        identity = [
            "-c",
            "user.name=scaffold-test",
            "-c",
            "user.email=scaffold-test@invalid",
            "-c",
            "commit.gpgsign=false",
        ]
        done = subprocess.run(
            ["git", *identity, *args], cwd=self.root, capture_output=True, text=True, check=True
        )
        return done.stdout

    def commit(self, message: str) -> None:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)

    def python(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``python <args>`` in the copy: its plugins/ first on the path and as Airflow's plugins folder."""
        environment = {k: v for k, v in os.environ.items() if k != "KAFKA_INGEST_TOPIC_SUFFIX"}
        plugins = str(self.root / "plugins")
        environment.update(
            PYTHONPATH=os.pathsep.join(filter(None, [plugins, os.environ.get("PYTHONPATH")])),
            AIRFLOW__CORE__PLUGINS_FOLDER=plugins,
            KAFKA_INGEST_REQUIRE_STACK="1",
            **env,
        )
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def scaffold(self, dataset: str, *args: str) -> str:
        done = self.python("-m", "kafka_ingest", "scaffold", dataset, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def edit(self, path: str, old: str, new: str) -> None:
        """Replace the one occurrence of ``old`` in ``path``, as a person would in an editor."""
        file = self.root / path
        text = file.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{path}: expected {old!r} once"
        file.write_text(text.replace(old, new), encoding="utf-8")

    def added_lines(self) -> dict[str, int]:
        """Lines added since the last commit, per file (new files included)."""
        self.git("add", "--all")
        rows = [line.split("\t") for line in self.git("diff", "--cached", "--numstat", "HEAD").splitlines()]
        return {path: int(added) for added, _, path in rows}

    def changes_under(self, folder: str) -> list[str]:
        """Every change to ``folder`` since the first commit, committed or not (ignored files aside)."""
        first = self.git("rev-list", "--max-parents=0", "HEAD").strip()
        changed = self.git("diff", "--name-only", first, "--", folder).splitlines()
        return changed + self.git("status", "--porcelain", "--untracked-files=all", "--", folder).splitlines()


@pytest.fixture
def repo_copy(tmp_path: Path) -> RepoCopy:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for path in tracked.decode().split("\0"):
        if path.startswith(COPIED) and (REPO / path).is_file():
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, tmp_path / path)
    (tmp_path / "dags").mkdir()
    copy = RepoCopy(tmp_path)
    copy.git("init", "--quiet")
    copy.commit("the project's tracked files")
    return copy


def test_a_scaffolded_topic_passes_its_own_tests_as_generated(
    repo_copy: RepoCopy, unique_name: Callable[[str], str]
) -> None:
    repo_copy.scaffold(
        "store_credits",
        "--topic",
        unique_name("credits"),
        "--key",
        "credit_number",
        "--columns",
        "credit_number,note",
    )

    tests = repo_copy.python(
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "tests/unit/ingest_topics/test_store_credits_spec.py",
        "tests/integration/test_topic_store_credits.py",
    )

    assert tests.returncode == 0, tests.stdout[-4000:]
    assert tests.stdout.splitlines()[-1].startswith("4 passed")
    assert repo_copy.changes_under(CORE) == []


def fill_in_refunds(copy: RepoCopy, topic: str) -> None:
    """What a data engineer writes after the scaffold: real types, one rule, a bad row, the tests."""
    schema = f"schemas/{topic}-value.avsc"
    copy.edit(
        schema,
        """{"name": "amount", "type": "string", "doc": "The extract's amount column (required)."}""",
        """{"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, """
        """"scale": 2}, "doc": "The amount refunded, > 0."}""",
    )
    copy.edit(
        schema,
        """{"name": "reason", "type": "string", "doc": "The extract's reason column (required)."}""",
        """{"name": "reason", "type": {"type": "enum", "name": "RefundReason", "symbols": """
        """["DAMAGED", "NOT_DELIVERED", "CHANGED_MIND"]}, "doc": "Why the order was refunded."}""",
    )
    spec = "plugins/ingest_topics/refunds.py"
    copy.edit(
        spec,
        '    "reason",\n)\n',
        '    "reason",\n)\nREASONS = ("DAMAGED", "NOT_DELIVERED", "CHANGED_MIND")\n',
    )
    copy.edit(spec, 'rules.checked("amount_required")', 'rules.checked("amount_positive")')
    copy.edit(spec, 'rules.checked("reason_required")', 'rules.checked("reason_allowed")')
    copy.edit(
        spec,
        "    return frame.assign(\n",
        '    amount = rules.parse_money(text["amount"])\n    return frame.assign(\n',
    )
    copy.edit(
        spec,
        '_amount_required=rules.present(text["amount"])',
        "_amount_positive=amount.ok & (amount.cents > 0)",
    )
    copy.edit(
        spec,
        '_reason_required=rules.present(text["reason"]),',
        '_reason_allowed=rules.one_of(text["reason"], REASONS),\n'
        "        _amount=rules.arrow_series(rules.cents_to_decimal_array(amount.cents, amount.ok), frame),",
    )
    copy.edit(spec, '"amount": text["amount"],', '"amount": pa.array(frame["_amount"].array),')
    (copy.root / f"samples/refunds/dt={DAY}/part-0001.csv").write_text(
        "refund_number,order_number,amount,reason\n"
        "REFUNDS-0001,ORD-0001,12.50,DAMAGED\n"
        "REFUNDS-0002,ORD-0002,3.00,CHANGED_MIND\n"
        "refunds-0003,ORD-0003,1.00,DAMAGED\n"
        "REFUNDS-0004,,1.00,NOT_DELIVERED\n"
        "REFUNDS-0001,ORD-0005,1.00,DAMAGED\n"
        "REFUNDS-0006,ORD-0006,0.00,NOT_DELIVERED\n",
        encoding="utf-8",
    )
    copy.edit(
        "tests/integration/test_topic_refunds.py",
        '    5: ("key_unique_in_day",),\n',
        '    5: ("key_unique_in_day",),\n    6: ("amount_positive",),\n',
    )
    unit = "tests/unit/ingest_topics/test_refunds_spec.py"
    copy.edit(unit, "from typing import Any\n", "from decimal import Decimal\nfrom typing import Any\n")
    copy.edit(unit, '"amount": "amount 1",', '"amount": "12.50",')
    copy.edit(unit, '"reason": "reason 1",', '"reason": "DAMAGED",')
    copy.edit(
        unit,
        "RECORD: dict[str, Any] = {**VALID}",
        'RECORD: dict[str, Any] = {**VALID, "amount": Decimal("12.50")}',
    )
    copy.edit(
        unit,
        '"amount_missing": ({"amount": ""}, ("amount_required",)),',
        '"amount_zero": ({"amount": "0.00"}, ("amount_positive",)),',
    )
    copy.edit(
        unit,
        '"reason_missing": ({"reason": ""}, ("reason_required",)),',
        '"reason_unknown": ({"reason": "LOST"}, ("reason_allowed",)),',
    )


def test_adding_refunds_takes_at_most_30_hand_written_lines_and_leaves_the_core_untouched(
    repo_copy: RepoCopy, unique_name: Callable[[str], str], kafka_bootstrap: str, schema_registry_url: str
) -> None:
    topic = unique_name("refunds")
    repo_copy.scaffold("refunds", "--topic", topic, "--key", "refund_number", "--columns", REFUND_COLUMNS)
    repo_copy.commit("scaffolded")

    fill_in_refunds(repo_copy, topic)

    hand_written = repo_copy.added_lines()
    print(f"hand-written lines: {sum(hand_written.values())} {hand_written}")
    assert sum(hand_written.values()) <= MAX_HAND_WRITTEN_LINES, hand_written
    lint = repo_copy.python("-m", "ruff", "check", *(path for path in hand_written if path.endswith(".py")))
    assert lint.returncode == 0, lint.stdout
    unit = repo_copy.python(
        "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/unit/ingest_topics/test_refunds_spec.py"
    )
    assert unit.returncode == 0, unit.stdout[-4000:]
    # The brokers create no topics: the new spec's are provisioned, as docs/adding-a-topic.md says.
    ensure = repo_copy.python("-m", "kafka_ingest", "topics", "ensure", "--bootstrap", kafka_bootstrap)
    assert ensure.returncode == 0, ensure.stdout + ensure.stderr
    assert f"created  {topic}.dlq" in ensure.stdout

    run = run_dag_in_copy(repo_copy, "ingest_refunds")

    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    values = decode(read_topic(kafka_bootstrap, topic), topic, schema_registry_url)
    assert sorted(values, key=lambda value: value["refund_number"]) == [
        {
            "refund_number": "REFUNDS-0001",
            "order_number": "ORD-0001",
            "amount": Decimal("12.50"),
            "reason": "DAMAGED",
        },
        {
            "refund_number": "REFUNDS-0002",
            "order_number": "ORD-0002",
            "amount": Decimal("3.00"),
            "reason": "CHANGED_MIND",
        },
    ]
    dlq = {envelope["source"]["row"]: envelope for envelope in dlq_envelopes(kafka_bootstrap, topic)}
    assert {row: tuple(envelope["failed_rules"]) for row, envelope in dlq.items()} == {
        3: ("refund_number_format",),
        4: ("order_number_required",),
        5: ("key_unique_in_day",),
        6: ("amount_positive",),
    }
    assert (dlq[6]["stage"], dlq[6]["original"]["amount"], PurePosixPath(dlq[6]["source"]["file"]).name) == (
        "validate",
        "0.00",
        "part-0001.csv",
    )
    assert repo_copy.changes_under(CORE) == []


def run_dag_in_copy(copy: RepoCopy, dag_id: str) -> subprocess.CompletedProcess[str]:
    """``airflow dags test`` in the copy, as the guide says to run a new DAG by hand; the DAG is
    deleted from the metadata DB afterwards."""
    try:
        return copy.python(
            "-m",
            "airflow",
            "dags",
            "test",
            dag_id,
            DAY,
            "--conf",
            json.dumps({"max_dlq_ratio": 1}),
            AIRFLOW__CORE__DAGS_FOLDER=str(copy.root / "dags"),
            AIRFLOW_VAR_EXTRACTS_ROOT=str(copy.root / "samples"),
        )
    finally:
        forget_dag(dag_id)


def forget_dag(dag_id: str) -> None:
    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound

    with contextlib.suppress(DagNotFound):
        delete_dag(dag_id, keep_records_in_log=False)


def decode(records: list[Any], topic: str, registry_url: str) -> list[dict[str, Any]]:
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url, "timeout": DEFAULT_TIMEOUT_S}))
    context = SerializationContext(topic, MessageField.VALUE)
    return [deserializer(record.value, context) for record in records]


def dlq_envelopes(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(record.value) for record in read_topic(bootstrap, f"{topic}.dlq")]
