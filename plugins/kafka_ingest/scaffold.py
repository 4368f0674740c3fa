"""``python -m kafka_ingest scaffold``: a new topic's files, written outside the core package.

A topic is a spec module plus its schema, DAG, sample day and tests. The spec module goes to
``plugins/ingest_topics/<dataset>.py``: ``plugins/`` is on ``sys.path`` in every Airflow process
that parses or runs DAGs (scheduler, dag-processor, workers, ``dag.test()``) and in this project's
venv, it ships with the DAGs, and nothing in ``kafka_ingest`` imports it, so adding a topic never
edits (or redeploys) the core. The generated code uses only public names (``kafka_ingest.rules``,
``kafka_ingest.specs``, the operator, the DAG factory, ``kafka_ingest.testing.topic_tests``).

The scaffold validates every argument before writing anything and refuses to overwrite any file.
It needs only the standard library; when the project's ruff is installed (the dev venv has it),
the command formats the generated Python with it, so long names still pass ``make lint``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import keyword
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from string import Template

TOPICS_PACKAGE = "ingest_topics"
SAMPLE_DAY = "2026-01-01"
SAMPLE_PART = "part-0001.csv"
NAMESPACE = "com.shopping.events"
#: Kafka's limit is 249 characters; the DLQ topic adds ``.dlq``.
MAX_TOPIC_LENGTH = 249 - len(".dlq")
MAX_DATASET_LENGTH = 64
_DATASET = re.compile(r"[a-z][a-z0-9_]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an Avro name is also an ASCII Python identifier
_TOPIC = re.compile(r"[A-Za-z0-9._-]+")
_TEMPLATES = Path(__file__).with_name("scaffold_templates")


class ScaffoldError(ValueError):
    """Arguments the scaffold cannot use; the message lists every problem at once."""


class FilesExistError(ScaffoldError):
    """Some of the files a topic needs exist already; nothing was written."""


@dataclass(frozen=True)
class TopicRequest:
    """A validated request: what the generated files are named after."""

    dataset: str
    topic: str
    key: str
    columns: tuple[str, ...]
    event_type: str

    @property
    def class_prefix(self) -> str:
        return camel_case(self.dataset)

    @property
    def constant(self) -> str:
        return self.dataset.upper()

    @property
    def schema_file(self) -> str:
        return f"{self.topic}-value.avsc"

    @property
    def key_rule(self) -> str:
        return f"{self.key}_format"

    def required_rule(self, column: str) -> str:
        return f"{column}_required"

    @property
    def other_columns(self) -> tuple[str, ...]:
        return tuple(column for column in self.columns if column != self.key)


def parse_request(
    dataset: str, topic: str, key: str, columns: Sequence[str] | None = None, event_type: str | None = None
) -> TopicRequest:
    """Validate the arguments; raises :class:`ScaffoldError` listing every problem found."""
    names = tuple(columns) if columns else (key,)
    problems = [*_dataset_problems(dataset), *_topic_problems(topic), *_column_problems(names, key)]
    event = event_type or camel_case(dataset)
    if event_type is not None and not _NAME.fullmatch(event_type):
        problems.append(
            f"event type {event_type!r} must be an Avro name: a letter or _, then letters, digits or _."
        )
    if problems:
        raise ScaffoldError("\n".join(problems))
    return TopicRequest(dataset=dataset, topic=topic, key=key, columns=names, event_type=event)


def camel_case(dataset: str) -> str:
    """``store_credits`` -> ``StoreCredits``: the operator's prefix and the default record name."""
    return "".join(part.capitalize() for part in dataset.split("_"))


def _dataset_problems(dataset: str) -> list[str]:
    if not _DATASET.fullmatch(dataset):
        return [
            f"dataset {dataset!r} must be a lowercase identifier: a letter, then lowercase letters, digits "
            "or _ (it names the extract folder, the topic module and the DAG ingest_<dataset>)."
        ]
    if keyword.iskeyword(dataset):
        return [f"dataset {dataset!r} is a Python keyword, so no module can be named after it."]
    if len(dataset) > MAX_DATASET_LENGTH:
        return [f"dataset {dataset!r} is {len(dataset)} characters long; at most {MAX_DATASET_LENGTH}."]
    return []


def _topic_problems(topic: str) -> list[str]:
    if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        return [
            f"topic {topic!r} is not a valid Kafka topic name: use ASCII letters, digits, '.', '_' and '-' "
            "(and not '.' or '..' alone)."
        ]
    problems = []
    if len(topic) > MAX_TOPIC_LENGTH:
        problems.append(
            f"topic {topic!r} is {len(topic)} characters long; at most {MAX_TOPIC_LENGTH}, so that its "
            "DLQ topic <topic>.dlq fits Kafka's 249."
        )
    if topic.endswith(".dlq"):
        problems.append(f"topic {topic!r} ends in '.dlq', the suffix that names DLQ topics.")
    if topic.startswith("__"):
        problems.append(f"topic {topic!r} starts with '__', which Kafka keeps for its internal topics.")
    return problems


def _column_problems(columns: tuple[str, ...], key: str) -> list[str]:
    problems = []
    if not _NAME.fullmatch(key):
        problems.append(
            f"key {key!r} must be an identifier (a letter or _, then letters, digits or _): it is an Avro "
            "field and names the rule <key>_format."
        )
    for column in columns:
        if not _NAME.fullmatch(column):
            problems.append(f"column {column!r} must be an identifier (a letter, then letters, digits or _).")
        elif column.startswith("_"):
            problems.append(
                f"column {column!r} starts with '_', which is kept for the columns prepare derives."
            )
    duplicates = sorted({column for column in columns if columns.count(column) > 1})
    if duplicates:
        problems.append(f"columns {', '.join(duplicates)} are given more than once.")
    if _NAME.fullmatch(key) and key not in columns:
        problems.append(f"key {key!r} is not among the columns ({', '.join(columns)}): add it to --columns.")
    return problems


# --------------------------------------------------------------------------- the files


@dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the repository root
    purpose: str
    content: str


def planned_files(request: TopicRequest) -> list[PlannedFile]:
    """Every file the topic needs, with what it is for."""
    d, day = request.dataset, f"samples/{request.dataset}/dt={SAMPLE_DAY}"
    return [
        PlannedFile(
            f"schemas/{request.schema_file}",
            f"the Avro value schema (subject {request.topic}-value), every column a string for now",
            render_schema(request),
        ),
        PlannedFile(
            f"plugins/{TOPICS_PACKAGE}/{d}.py",
            "the topic: columns, rules, prepare, to_table, and its operator",
            _render("topic.py.tmpl", request),
        ),
        PlannedFile(
            f"dags/ingest_{d}.py", "the daily DAG (build_ingest_dag)", _render("dag.py.tmpl", request)
        ),
        PlannedFile(
            f"{day}/{SAMPLE_PART}",
            "a sample day: two valid rows, one bad row per starter rule",
            render_sample(request),
        ),
        PlannedFile(
            f"{day}/_SUCCESS", "the upstream's 'day complete' marker, written after the part files", ""
        ),
        PlannedFile(
            f"tests/unit/{TOPICS_PACKAGE}/test_{d}_spec.py",
            "rule and record unit tests (no stack)",
            _render("test_spec.py.tmpl", request),
        ),
        PlannedFile(
            f"tests/integration/test_topic_{d}.py",
            "the sample day through the DAG with dag.test() (needs the stack)",
            _render("test_topic.py.tmpl", request),
        ),
    ]


def render_schema(request: TopicRequest) -> str:
    """A record with every column as a string, one field per line so each later change is one line."""
    fields = [
        {"name": request.key, "type": "string", "doc": "The record key; unique within a day's extract."},
        *(
            {"name": column, "type": "string", "doc": f"The extract's {column} column (required)."}
            for column in request.other_columns
        ),
    ]
    header = {
        "type": "record",
        "name": request.event_type,
        "namespace": NAMESPACE,
        "doc": f"One row of the daily {request.dataset} extract, keyed by {request.key}.",
    }
    lines = [
        f"  {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)}," for name, value in header.items()
    ]
    field_lines = ",\n".join(f"    {json.dumps(field, ensure_ascii=False)}" for field in fields)
    return "{\n" + "\n".join(lines) + '\n  "fields": [\n' + field_lines + "\n  ]\n}\n"


def sample_rows(request: TopicRequest) -> list[dict[str, str]]:
    """Two valid rows, then one per starter rule that sends a row to the DLQ (see the test's DLQ_ROWS)."""
    prefix = request.dataset.upper().replace("_", "-")[:20].rstrip("-")

    def row(number: int) -> dict[str, str]:
        return {
            column: f"{prefix}-{number:04d}" if column == request.key else f"{column} {number}"
            for column in request.columns
        }

    rows = [row(1), row(2), {**row(3), request.key: f"{prefix.lower()}-0003"}]
    if request.other_columns:
        rows.append({**row(4), request.other_columns[0]: ""})
    rows.append({**row(len(rows) + 1), request.key: rows[0][request.key]})
    return rows


def sample_dlq_rows(request: TopicRequest) -> dict[int, str]:
    """Row number (1 = first data row) of each bad sample row -> the rule that rejects it."""
    rules = [request.key_rule]
    if request.other_columns:
        rules.append(request.required_rule(request.other_columns[0]))
    rules.append("key_unique_in_day")
    return {number: rule for number, rule in enumerate(rules, start=3)}


def render_sample(request: TopicRequest) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(request.columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(sample_rows(request))
    return out.getvalue()


def _render(template: str, request: TopicRequest) -> str:
    valid = sample_rows(request)[0]
    key, prefix = request.key, valid[request.key].rsplit("-", 1)[0]
    values = {
        "dataset": request.dataset,
        "topic": request.topic,
        "key": key,
        "key_rule": request.key_rule,
        "schema_file": request.schema_file,
        "event_type": request.event_type,
        "constant": request.constant,
        "operator": f"{request.class_prefix}ToKafkaOperator",
        "day": SAMPLE_DAY,
        "part": SAMPLE_PART,
        "columns": _lines(f'"{c}",' for c in request.columns),
        "rules": _lines(
            f'rules.checked("{rule}"),'
            for rule in (request.key_rule, *map(request.required_rule, request.other_columns))
        ),
        "prepare": _lines(
            [
                f'_{request.key_rule}=rules.full_match(text["{key}"], rules.CODE_PATTERN),',
                *(f'_{request.required_rule(c)}=rules.present(text["{c}"]),' for c in request.other_columns),
            ],
            indent=8,
        ),
        "table": _lines((f'"{c}": text["{c}"],' for c in request.columns), indent=12),
        "valid": _lines(f'"{c}": "{v}",' for c, v in valid.items()),
        "cases": _lines(
            [
                '"valid": ({}, ()),',
                f'"{key}_lowercase": ({{"{key}": "{prefix.lower()}-0001"}}, ("{request.key_rule}",)),',
                f'"{key}_missing": ({{"{key}": ""}}, ("{request.key_rule}",)),',
                *(
                    f'"{c}_missing": ({{"{c}": ""}}, ("{request.required_rule(c)}",)),'
                    for c in request.other_columns
                ),
            ]
        ),
        "dlq_rows": _lines(f'{n}: ("{rule}",),' for n, rule in sample_dlq_rows(request).items()),
    }
    return Template((_TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)


def _lines(lines: Iterable[str], indent: int = 4) -> str:
    return "\n".join(" " * indent + line for line in lines)


# --------------------------------------------------------------------------- writing


def scaffold(repo: Path, request: TopicRequest) -> list[PlannedFile]:
    """Write the topic's files under ``repo`` and return them. Overwrites nothing, ever."""
    if not (repo / "dags").is_dir() or not (repo / "schemas").is_dir():
        raise ScaffoldError(
            f"{repo} is not the project's root (it has no dags/ and schemas/ folders): run the scaffold "
            "from the repository root or pass --repo PATH."
        )
    files = planned_files(request)
    existing = [file.path for file in files if (repo / file.path).exists()]
    existing += _same_test_module_names(repo, files)
    if existing:
        raise FilesExistError(
            "Refusing to overwrite existing files (nothing was written):\n"
            + "".join(f"  {path}\n" for path in existing)
            + "Choose another dataset or topic, or move those files away first."
        )
    if not (repo / "plugins" / TOPICS_PACKAGE / "__init__.py").exists():
        files.insert(
            0, PlannedFile(f"plugins/{TOPICS_PACKAGE}/__init__.py", "the topics' package", _PACKAGE_DOC)
        )
    for file in files:
        target = repo / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content, encoding="utf-8")
    return files


def _same_test_module_names(repo: Path, files: Sequence[PlannedFile]) -> list[str]:
    """Test files elsewhere with a generated test's file name: pytest could not import both."""
    names = {PurePosixPath(file.path).name: file.path for file in files if file.path.startswith("tests/")}
    return [
        f"{path.relative_to(repo).as_posix()} (same test module name as {names[path.name]})"
        for path in sorted((repo / "tests").rglob("test_*.py"))
        if path.name in names and path.relative_to(repo).as_posix() != names[path.name]
    ]


def format_python(repo: Path, files: Sequence[PlannedFile]) -> bool:
    """Format the generated Python with the project's ruff configuration; False if ruff is missing."""
    paths = [file.path for file in files if file.path.endswith(".py")]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--quiet", *paths],
            cwd=repo,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


_PACKAGE_DOC = (
    '"""The team\'s topics, one module each, outside the core package (docs/adding-a-topic.md)."""\n'
)


def report(request: TopicRequest, created: Sequence[PlannedFile]) -> str:
    """What was created and what to do next, for the terminal."""
    d = request.dataset
    width = max(len(file.path) for file in created) + 2
    lines = [
        f"Created topic {request.topic} (DLQ {request.topic}.dlq) for dataset {d}, key {request.key}:",
        "",
        *(f"  {file.path:<{width}}{file.purpose}" for file in created),
        "",
        "Next steps (docs/adding-a-topic.md):",
        f"  1. Give schemas/{request.schema_file} its real types; parse those columns in prepare, add",
        f"     their rules and return them typed from to_table (plugins/{TOPICS_PACKAGE}/{d}.py).",
        "  2. Keep the sample, VALID/RECORD/CASES (unit test) and DLQ_ROWS (integration test) in step.",
        f"  3. make test-unit PYTEST_ARGS=tests/unit/{TOPICS_PACKAGE}/test_{d}_spec.py",
        f"  4. make test PYTEST_ARGS=tests/integration/test_topic_{d}.py",
        f"  5. AIRFLOW_VAR_EXTRACTS_ROOT=$PWD/samples scripts/airflow dags test ingest_{d} {SAMPLE_DAY} "
        """--conf '{"max_dlq_ratio": 1}'""",
        "  6. make lint, commit; before the first production run, register the schema (see the guide).",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "scaffold",
        help="add a topic: schema, spec module, DAG, sample day and tests",
        description="Write a new topic's files outside the core package (docs/adding-a-topic.md).",
    )
    parser.add_argument("dataset", help="the extract folder's name, a lowercase identifier (refunds)")
    parser.add_argument("--topic", required=True, help="the Kafka topic (shopping.refund.created)")
    parser.add_argument("--key", required=True, help="the column that keys each record (refund_number)")
    parser.add_argument(
        "--columns", help="the extract's columns, comma-separated, the key among them (default: the key only)"
    )
    parser.add_argument(
        "--event-type", help="the Avro record name and event_type header (default: the dataset in CamelCase)"
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository root (default: .)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    try:
        request = parse_request(args.dataset, args.topic, args.key, columns, args.event_type)
        repo = args.repo.resolve()
        created = scaffold(repo, request)
    except FilesExistError as exc:
        print(f"scaffold: {exc}", file=sys.stderr)
        return 1
    except ScaffoldError as exc:
        print(f"scaffold: {exc}", file=sys.stderr)
        return 2
    print(report(request, created))
    if not format_python(repo, created):
        print("(ruff is not installed here: the generated Python is left unformatted)", file=sys.stderr)
    return 0
