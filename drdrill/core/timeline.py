"""The drill timeline: timed phases and point events, the raw material of every measurement.

Each entry carries a UTC wall time (to compare with timestamps the platform stored, e.g. canary
writes) and a monotonic offset from the timeline's origin (to measure durations that a wall
clock adjustment cannot distort).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from drdrill.core.clock import Clock, SystemClock, from_iso, to_iso, utc_ms
from drdrill.errors import DrdrillError, RecoveryFailure

PhaseStatus = Literal["passed", "failed", "error", "skipped", "incomplete"]
PHASE_STATUSES: tuple[str, ...] = get_args(PhaseStatus)

DISASTER = "disaster"
RECOVERED = "recovered"


def _ms(seconds: float) -> float:
    # Offsets and durations are kept at millisecond resolution, like the wall times.
    return round(seconds, 3)


def _opt_iso(dt: datetime | None) -> str | None:
    return None if dt is None else to_iso(dt)


def _opt_from_iso(text: str | None) -> datetime | None:
    return None if text is None else from_iso(text)


def _plain(value: Any) -> Any:
    """Make event data JSON-ready: datetimes become ISO text, containers are copied."""
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def describe_exception(exc: BaseException) -> str:
    """One line for a report: drdrill errors already know how to say it briefly."""
    if isinstance(exc, DrdrillError):
        return exc.one_line()
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Phase:
    name: str
    started_at: datetime
    start_offset: float
    finished_at: datetime | None = None
    end_offset: float | None = None
    duration_seconds: float | None = None
    # "incomplete" until the phase ends: a report written mid-phase shows it unfinished.
    status: PhaseStatus = "incomplete"
    detail: str | None = None
    error: str | None = None

    def skip(self, reason: str) -> None:
        """Mark a running phase as skipped (e.g. not applicable to this target)."""
        self.status = "skipped"
        self.detail = reason

    def fail(self, reason: str) -> None:
        """Mark a running phase as failed without ending it: part of its work failed (one
        tenant of several) and the rest goes on, to be reported too."""
        self.status = "failed"
        self.error = reason if self.error is None else f"{self.error}; {reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": to_iso(self.started_at),
            "finished_at": _opt_iso(self.finished_at),
            "start_offset_seconds": self.start_offset,
            "end_offset_seconds": self.end_offset,
            "duration_seconds": self.duration_seconds,
            "status": self.status,
            "detail": self.detail,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Phase:
        status = data["status"]
        if status not in PHASE_STATUSES:
            raise ValueError(f"phase {data.get('name')!r}: unknown status {status!r}")
        return cls(
            name=data["name"],
            started_at=from_iso(data["started_at"]),
            start_offset=data["start_offset_seconds"],
            finished_at=_opt_from_iso(data.get("finished_at")),
            end_offset=data.get("end_offset_seconds"),
            duration_seconds=data.get("duration_seconds"),
            status=status,
            detail=data.get("detail"),
            error=data.get("error"),
        )


@dataclass
class Event:
    name: str
    at: datetime
    offset: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "at": to_iso(self.at), "offset_seconds": self.offset, "data": self.data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            name=data["name"],
            at=from_iso(data["at"]),
            offset=data["offset_seconds"],
            data=dict(data.get("data") or {}),
        )


class Timeline:
    """Phases and events of one drill, timed against one origin."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.origin: datetime = utc_ms(self.clock.wall())
        self._origin_mono = self.clock.monotonic()
        self.phases: list[Phase] = []
        self.events: list[Event] = []

    def _now(self) -> tuple[datetime, float]:
        return utc_ms(self.clock.wall()), _ms(self.clock.monotonic() - self._origin_mono)

    @contextmanager
    def phase(self, name: str, detail: str | None = None) -> Iterator[Phase]:
        """Time a phase. It is recorded even if the block raises; the exception propagates.

        Status: "failed" when the system under drill failed (RecoveryFailure), "incomplete"
        when interrupted, "error" for anything else (the harness broke), "passed" otherwise,
        or "skipped" if the block called ``ph.skip()``.
        """
        started_at, offset = self._now()
        ph = Phase(name=name, started_at=started_at, start_offset=offset, detail=detail)
        # Appended before the block runs, so a report written during the phase still shows it.
        self.phases.append(ph)
        status: PhaseStatus = "error"
        try:
            yield ph
            status = ph.status if ph.status in ("skipped", "failed") else "passed"
        except RecoveryFailure as exc:
            status, ph.error = "failed", describe_exception(exc)
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            status, ph.error = "incomplete", f"interrupted ({type(exc).__name__})"
            raise
        except BaseException as exc:
            status, ph.error = "error", describe_exception(exc)
            raise
        finally:
            ph.finished_at, ph.end_offset = self._now()
            ph.duration_seconds = _ms(ph.end_offset - ph.start_offset)
            ph.status = status

    def instant(self) -> tuple[datetime, float]:
        """Now, as (UTC wall time, monotonic offset): a boundary for :meth:`add_phase`."""
        return self._now()

    def add_phase(self, name: str, start: tuple[datetime, float], end: tuple[datetime, float], *,
                  status: PhaseStatus = "passed", detail: str | None = None) -> Phase:
        """Record a phase whose bounds were taken while a larger phase ran (the part of a restore
        that recovered primaries, then the part that rebuilt replicas): a breakdown of that
        phase, measured, never a second clock."""
        ph = Phase(name=name, started_at=start[0], start_offset=start[1], finished_at=end[0], end_offset=end[1],
                   duration_seconds=_ms(end[1] - start[1]), status=status, detail=detail)
        self.phases.append(ph)
        return ph

    def event(self, name: str, **data: Any) -> Event:
        at, offset = self._now()
        ev = Event(name=name, at=at, offset=offset, data=_plain(data))
        self.events.append(ev)
        return ev

    def mark_disaster(self, **data: Any) -> Event:
        """T_disaster: the moment the disaster is injected or declared."""
        return self.event(DISASTER, **data)

    def mark_recovered(self, **data: Any) -> Event:
        """T_recovered: the last required verification (and traffic switch) passed."""
        return self.event(RECOVERED, **data)

    def recovery_window(self) -> tuple[Event, Event | None] | None:
        """(T_disaster, T_recovered) of the latest disaster; T_recovered is None until a
        recovery is marked *after* that disaster (an earlier one does not count)."""
        idx = next((i for i in range(len(self.events) - 1, -1, -1) if self.events[i].name == DISASTER), None)
        if idx is None:
            return None
        recovered = next((ev for ev in self.events[idx + 1 :] if ev.name == RECOVERED), None)
        return self.events[idx], recovered

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": to_iso(self.origin),
            "phases": [ph.to_dict() for ph in self.phases],
            "events": [ev.to_dict() for ev in self.events],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], clock: Clock | None = None) -> Timeline:
        """Rebuild a recorded timeline for reading; its monotonic origin is not recoverable,
        so entries added afterwards would be timed from the moment of loading."""
        tl = cls(clock)
        tl.origin = from_iso(data["origin"])
        tl.phases = [Phase.from_dict(p) for p in data.get("phases", [])]
        tl.events = [Event.from_dict(e) for e in data.get("events", [])]
        return tl
