"""Waits for a dataset day's ``_SUCCESS`` marker: the upstream's word that the day is complete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowSensorTimeout


def day_folder(root: str, dataset: str, date: str) -> str:
    """EXTRACTS.md's landing layout: ``<root>/<dataset>/dt=YYYY-MM-DD``."""
    return f"{str(root).rstrip('/')}/{dataset}/dt={date}"


class ExtractDaySensor(BaseSensorOperator):
    """Succeeds once ``<extracts_root>/<dataset>/dt=<date>/_SUCCESS`` exists.

    Runs in ``reschedule`` mode by default so a late upstream holds no worker slot. When the
    day never completes, the task fails with a message naming the folder and the wait.

    :param extracts_root: local folder or fsspec URL of the extracts root. Templated.
    :param dataset: the dataset folder (``orders``).
    :param extract_date: the day (``{{ ds }}``). Templated.
    """

    template_fields: Sequence[str] = ("extracts_root", "dataset", "extract_date")

    def __init__(
        self,
        *,
        extracts_root: str,
        dataset: str,
        extract_date: str = "{{ ds }}",
        mode: str = "reschedule",
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, **kwargs)
        self.extracts_root = extracts_root
        self.dataset = dataset
        self.extract_date = extract_date

    @property
    def marker(self) -> str:
        return f"{day_folder(self.extracts_root, self.dataset, self.extract_date)}/_SUCCESS"

    def poke(self, context: Context) -> bool:
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.marker)
        found = bool(fs.exists(path))
        if not found:
            self.log.info("Waiting for %s", self.marker)
        return found

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(
                f"The {self.dataset} extract for {self.extract_date} never completed: no _SUCCESS marker at "
                f"{self.marker} after waiting {self.timeout:.0f}s. Check the upstream export, then clear "
                "this task to wait again."
            ) from exc
