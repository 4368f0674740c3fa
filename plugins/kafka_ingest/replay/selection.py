"""Which envelopes a replay takes: the selection an on-call engineer fills in.

Every criterion is optional and they combine with AND; within one criterion a list means any of
them. An envelope a replay has already re-dead-lettered (another envelope names it in
``replay.of``) is superseded by that newer envelope, and envelopes written by the running replay
itself are never taken (no loop).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from kafka_ingest.replay.envelopes import DlqRef, Envelope
from kafka_ingest.replay.errors import ReplayInputError


@dataclass(frozen=True)
class Selection:
    """``date_from``/``date_to``: inclusive bounds on ``source.date`` (YYYY-MM-DD)."""

    date_from: str | None = None
    date_to: str | None = None
    stages: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    error_types: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    raise ReplayInputError(
                        f"Selection {name} {value!r} is not a date (YYYY-MM-DD)."
                    ) from None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Selection:
        """From DAG Params or CLI arguments: lists or comma-separated text, blanks meaning "any"."""
        return cls(
            date_from=_text(params.get("date_from")),
            date_to=_text(params.get("date_to")),
            stages=_items(params.get("stages")),
            rules=_items(params.get("rules")),
            error_types=_items(params.get("error_types")),
            files=_items(params.get("files")),
            keys=_items(params.get("keys")),
        )

    def matches(self, envelope: Envelope) -> bool:
        return (
            (self.date_from is None or envelope.date >= self.date_from)
            and (self.date_to is None or envelope.date <= self.date_to)
            and (not self.stages or envelope.stage in self.stages)
            and (not self.rules or not set(self.rules).isdisjoint(envelope.failed_rules))
            and (not self.error_types or envelope.error_type in self.error_types)
            and (not self.files or _file_matches(envelope.file, self.files))
            and (not self.keys or envelope.key in self.keys)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()
        }


def select(envelopes: Iterable[Envelope], selection: Selection, replay_id: str) -> list[Envelope]:
    """The envelopes to replay, in DLQ order: current (not superseded), not our own, matching."""
    candidates = [e for e in envelopes if e.replay_id != replay_id]
    superseded: set[DlqRef] = {ref for e in candidates if (ref := e.replay_of) is not None}
    chosen = [e for e in candidates if e.ref not in superseded and selection.matches(e)]
    return sorted(chosen, key=lambda e: (e.ref.partition, e.ref.offset))


def _file_matches(file: str, wanted: Sequence[str]) -> bool:
    name = file.rsplit("/", 1)[-1]
    return any(file == w or name == w for w in wanted)


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _items(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
