"""The deploy suites: the stack's running Airflow as an operator meets it (a real browser on the
UI) and as it fails (Celery workers and the scheduler killed). Every test module here marks
its tests ``deploy`` (and ``integration``); the fault tests also ``celery``, since they need the stack
started with ``EXECUTOR=celery``. ``make test`` leaves them out; ``make test-ui``,
``make test-celery`` and ``make test-deploy`` run them (docs/deploy.md).

Artifacts (screenshots) go under ``$STACK_DIR/artifacts/<test>/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder of the test's own for screenshots, kept after the run (the stack dir is not
    in git)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    folder = Path(os.environ["STACK_DIR"]) / "artifacts" / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture(scope="session")
def celery_stack() -> str:
    """The stack must run the CeleryExecutor (make up EXECUTOR=celery): fails otherwise, a
    fault test on another executor would prove nothing."""
    executor = os.environ.get("AIRFLOW__CORE__EXECUTOR", "")
    if executor != "CeleryExecutor":
        pytest.fail(
            f"needs the Celery stack (make up EXECUTOR=celery); the stack runs {executor}", pytrace=False
        )
    return executor
