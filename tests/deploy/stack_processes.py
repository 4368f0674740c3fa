"""The stack's own Airflow processes, as the fault tests kill and bring them back.

A component's pid is the one ``scripts/stack`` recorded in ``$STACK_DIR/run/<name>.pid``; killing it
means killing its whole tree (a Celery worker's main process, its pool processes and the task
processes they fork), frozen first so that nothing forks while the tree is listed. Bringing it back
goes through the project's own ``scripts/stack restart <name>``, as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: ``scripts/stack restart`` waits up to AIRFLOW_READY_TIMEOUT (420 s) itself; this is its outer bound.
RESTART_TIMEOUT_S = 600


def stack_pid(name: str) -> int:
    """The live pid of component ``name`` (e.g. ``airflow-worker-1``), from the stack's run dir."""
    path = Path(os.environ["STACK_DIR"]) / "run" / f"{name}.pid"
    assert path.exists(), f"{path} not found: is {name} running (make status)?"
    pid = int(path.read_text())
    assert Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) is not running (make status)"
    return pid


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list: a child's parent is a process, but the
    kernel files it under the thread that forked it)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILLs ``pid`` and every descendant; the pids killed, root first.

    The tree is frozen (SIGSTOP) from the root down while it is listed, so that a pool process
    cannot fork a new task process between the listing and the kill.
    """
    tree: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop(0)
        if current in tree:
            continue
        try:
            os.kill(current, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        tree.append(current)
        pending.extend(children(current))
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{member}").exists() and not _zombie(member) for member in tree):
        assert time.monotonic() < deadline, f"processes {tree} still alive 30 s after SIGKILL"
        time.sleep(0.2)
    return tree


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def restart(name: str) -> float:
    """``scripts/stack restart <name>``: starts the component again and waits until it is ready;
    the seconds it took."""
    started = time.monotonic()
    done = subprocess.run(
        [str(REPO / "scripts" / "stack"), "restart", name],
        capture_output=True,
        text=True,
        timeout=RESTART_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"scripts/stack restart {name} failed:\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - started
