"""Runs the ``replay_dlq`` DAG once with ``dag.test()`` in a child process that dies on cue.

    python replay_driver.py '{"dag_id": ..., "conf": {...}, "kill_after_commits": 1}'

``kill_after_commits``: k -> SIGKILL right after the replay's k-th batch committed (its records,
re-dead-lettered envelopes and checkpoint are on the broker; the audit record is not).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from replay_helpers import replay_dag

from kafka_ingest.publisher import BatchResult, BatchToPublish, TransactionalPublisher


def install_crash_point(kill_after: int) -> None:
    publish = TransactionalPublisher.publish
    committed = 0

    def publish_then_die(
        self: TransactionalPublisher, batch: BatchToPublish, *a: Any, **k: Any
    ) -> BatchResult:
        nonlocal committed
        result = publish(self, batch, *a, **k)
        if batch.records or batch.dlq:
            committed += 1
            if committed == kill_after:
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    TransactionalPublisher.publish = publish_then_die  # type: ignore[method-assign]


def main(args: dict[str, Any]) -> int:
    install_crash_point(int(args["kill_after_commits"]))
    dag = replay_dag(args["dag_id"])
    dag.test(run_conf={"dry_run": False, **args["conf"]})
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
