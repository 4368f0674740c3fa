"""``python -m kafka_ingest scaffold``: argument validation, refusing to overwrite, the files it writes.

That the generated topic runs (its own tests, its DAG against the stack) is
``tests/integration/test_scaffolded_topics.py``'s job.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import fastavro
import pytest

from kafka_ingest.__main__ import main
from kafka_ingest.scaffold import FilesExistError, ScaffoldError, TopicRequest, parse_request, scaffold

REPO = Path(__file__).resolve().parents[2]
COLUMNS = ("refund_number", "order_number", "amount", "reason")
GENERATED = [
    "schemas/shopping.refund.created-value.avsc",
    "plugins/ingest_topics/refunds.py",
    "dags/ingest_refunds.py",
    "samples/refunds/dt=2026-01-01/part-0001.csv",
    "samples/refunds/dt=2026-01-01/_SUCCESS",
    "tests/unit/ingest_topics/test_refunds_spec.py",
    "tests/integration/test_topic_refunds.py",
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty project root: the folders the scaffold looks for, and the lint configuration."""
    for folder in ("dags", "schemas"):
        (tmp_path / folder).mkdir()
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def refunds(**changes: object) -> TopicRequest:
    arguments: dict[str, object] = {
        "dataset": "refunds",
        "topic": "shopping.refund.created",
        "key": "refund_number",
        "columns": COLUMNS,
        **changes,
    }
    return parse_request(**arguments)  # type: ignore[arg-type]


def problems(**changes: object) -> str:
    with pytest.raises(ScaffoldError) as raised:
        refunds(**changes)
    return str(raised.value)


# --------------------------------------------------------------------------- validation


def test_a_valid_request_names_the_record_after_the_dataset() -> None:
    request = refunds(dataset="store_credits", key="credit_number", columns=("credit_number",))

    assert (request.event_type, request.class_prefix, request.constant) == (
        "StoreCredits",
        "StoreCredits",
        "STORE_CREDITS",
    )


def test_without_columns_the_key_is_the_only_column() -> None:
    assert refunds(columns=None).columns == ("refund_number",)


@pytest.mark.parametrize(
    "dataset", ["Refunds", "1refunds", "re-funds", "refunds!", "", "réfunds", "_refunds"]
)
def test_dataset_must_be_a_lowercase_identifier(dataset: str) -> None:
    assert f"dataset {dataset!r} must be a lowercase identifier" in problems(dataset=dataset)


def test_dataset_must_not_be_a_python_keyword() -> None:
    assert "dataset 'class' is a Python keyword" in problems(dataset="class")


def test_dataset_length_is_bounded() -> None:
    assert "is 65 characters long; at most 64" in problems(dataset="r" * 65)


@pytest.mark.parametrize("topic", ["shopping refund", "shopping/refund", "shöpping.refund", "", ".", ".."])
def test_topic_must_be_a_valid_kafka_topic_name(topic: str) -> None:
    assert f"topic {topic!r} is not a valid Kafka topic name" in problems(topic=topic)


def test_topic_leaves_room_for_its_dlq_topic() -> None:
    assert "at most 245, so that its DLQ topic <topic>.dlq fits Kafka's 249" in problems(topic="t" * 246)
    assert refunds(topic="t" * 245).topic == "t" * 245


@pytest.mark.parametrize(
    ("topic", "reason"),
    [("shopping.refund.dlq", "the suffix that names DLQ topics"), ("__refunds", "internal topics")],
)
def test_topic_must_not_look_like_a_dlq_or_internal_topic(topic: str, reason: str) -> None:
    assert reason in problems(topic=topic)


def test_key_must_be_among_the_columns() -> None:
    message = problems(key="refund_id")

    assert message == (
        "key 'refund_id' is not among the columns (refund_number, order_number, amount, reason): "
        "add it to --columns."
    )


@pytest.mark.parametrize("key", ["refund-number", "1st", "refund number", ""])
def test_key_must_be_an_identifier(key: str) -> None:
    assert f"key {key!r} must be an identifier" in problems(key=key, columns=(*COLUMNS, key))


def test_columns_must_be_identifiers_not_derived_names_and_unique() -> None:
    message = problems(columns=("refund_number", "amount", "amount", "_flag", "refund reason"))

    assert "columns amount are given more than once." in message
    assert "column '_flag' starts with '_'" in message
    assert "column 'refund reason' must be an identifier" in message


def test_event_type_must_be_an_avro_name() -> None:
    assert "event type 'Refund.Created' must be an Avro name" in problems(event_type="Refund.Created")


def test_every_problem_is_reported_at_once() -> None:
    message = problems(dataset="Refunds", topic="a b", key="refund_id")

    assert [line.split(" ", 1)[0] for line in message.splitlines()] == ["dataset", "topic", "key"]


# --------------------------------------------------------------------------- writing


def test_writes_every_file_the_topic_needs_and_the_topics_package(repo: Path) -> None:
    created = [file.path for file in scaffold(repo, refunds())]

    assert created == ["plugins/ingest_topics/__init__.py", *GENERATED]
    assert all((repo / path).is_file() for path in created)


def test_refuses_to_overwrite_and_lists_every_existing_file_writing_nothing(repo: Path) -> None:
    for path in ("dags/ingest_refunds.py", "schemas/shopping.refund.created-value.avsc"):
        (repo / path).write_text("mine\n")

    with pytest.raises(FilesExistError) as raised:
        scaffold(repo, refunds())

    assert str(raised.value).splitlines() == [
        "Refusing to overwrite existing files (nothing was written):",
        "  schemas/shopping.refund.created-value.avsc",
        "  dags/ingest_refunds.py",
        "Choose another dataset or topic, or move those files away first.",
    ]
    assert (repo / "dags/ingest_refunds.py").read_text() == "mine\n"
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()) == [
        "dags/ingest_refunds.py",
        "pyproject.toml",
        "schemas/shopping.refund.created-value.avsc",
    ]


def test_refuses_a_test_file_name_pytest_could_not_import_twice(repo: Path) -> None:
    (repo / "tests/other").mkdir(parents=True)
    (repo / "tests/other/test_topic_refunds.py").write_text("")

    with pytest.raises(
        FilesExistError, match=r"tests/other/test_topic_refunds.py \(same test module name as "
    ):
        scaffold(repo, refunds())


def test_a_second_topic_keeps_the_existing_topics_package(repo: Path) -> None:
    scaffold(repo, refunds())

    created = scaffold(repo, refunds(dataset="returns", topic="shopping.return.created"))

    assert "plugins/ingest_topics/__init__.py" not in [file.path for file in created]


def test_refuses_a_folder_that_is_not_the_project_root(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"is not the project's root \(it has no dags/ and schemas/"):
        scaffold(tmp_path, refunds())


def test_schema_is_a_valid_avro_record_with_every_column_as_a_documented_string(repo: Path) -> None:
    scaffold(repo, refunds())

    schema = json.loads((repo / GENERATED[0]).read_text())

    parsed = fastavro.parse_schema(schema)
    assert isinstance(parsed, dict)
    assert parsed["name"] == "com.shopping.events.Refunds"
    assert [(f["name"], f["type"]) for f in schema["fields"]] == [(c, "string") for c in COLUMNS]
    assert all(field["doc"] for field in schema["fields"])


def test_sample_day_has_two_valid_rows_and_one_bad_row_per_starter_rule(repo: Path) -> None:
    scaffold(repo, refunds())

    lines = (repo / GENERATED[3]).read_text().splitlines()

    assert lines == [
        "refund_number,order_number,amount,reason",
        "REFUNDS-0001,order_number 1,amount 1,reason 1",
        "REFUNDS-0002,order_number 2,amount 2,reason 2",
        "refunds-0003,order_number 3,amount 3,reason 3",
        "REFUNDS-0004,,amount 4,reason 4",
        "REFUNDS-0001,order_number 5,amount 5,reason 5",
    ]
    assert (repo / GENERATED[4]).read_bytes() == b""


def test_generated_python_is_left_formatted_as_the_project_lints_it(repo: Path) -> None:
    names = "settlement_reference_code,merchant_account_identifier,settled_amount_in_minor_units"
    key = names.split(",")[0]
    main(
        [
            "scaffold",
            "merchant_settlements",
            "--topic",
            "t",
            "--key",
            key,
            "--columns",
            names,
            "--repo",
            str(repo),
        ]
    )
    main(["scaffold", "x", "--topic", "x", "--key", "k", "--repo", str(repo)])
    ruff = [sys.executable, "-m", "ruff"]

    check = subprocess.run([*ruff, "check", "."], cwd=repo, capture_output=True, text=True)
    form = subprocess.run([*ruff, "format", "--check", "."], cwd=repo, capture_output=True, text=True)

    assert (check.returncode, form.returncode) == (0, 0), check.stdout + form.stdout


# --------------------------------------------------------------------------- command line


def test_command_prints_what_it_created_and_the_next_steps(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["scaffold", "refunds", "--topic", "shopping.refund.created", "--key", "refund_number"]

    assert main([*argv, "--columns", " refund_number, amount ", "--repo", str(repo)]) == 0

    out = capsys.readouterr().out
    assert out.startswith("Created topic shopping.refund.created (DLQ shopping.refund.created.dlq)")
    assert all(path in out for path in GENERATED)
    assert "scripts/airflow dags test ingest_refunds 2026-01-01" in out
    schema = json.loads((repo / GENERATED[0]).read_text())
    assert [field["name"] for field in schema["fields"]] == ["refund_number", "amount"]


def test_command_exits_2_naming_the_invalid_arguments(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scaffold", "Refunds", "--topic", "shopping.refund.created", "--key", "refund_number"]

    assert main([*argv, "--repo", str(repo)]) == 2

    assert capsys.readouterr().err.startswith("scaffold: dataset 'Refunds' must be a lowercase identifier")
    assert list((repo / "dags").iterdir()) == []


def test_command_exits_1_when_files_exist(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scaffold", "refunds", "--topic", "shopping.refund.created", "--key", "refund_number"]
    assert main([*argv, "--repo", str(repo)]) == 0

    assert main([*argv, "--repo", str(repo)]) == 1

    assert "Refusing to overwrite existing files" in capsys.readouterr().err


def test_command_requires_topic_and_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["scaffold", "refunds"])

    assert raised.value.code == 2
    assert "the following arguments are required: --topic, --key" in capsys.readouterr().err
