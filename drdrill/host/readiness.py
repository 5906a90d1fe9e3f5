"""The one bounded wait: poll a probe until it says ready, and fail with the last observed
state (and, for a service, its log's last lines and whether its process died)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from drdrill.errors import DrdrillError, ServiceNotReady, WaitTimedOut
from drdrill.host.tools import tail_text

Probe = Callable[[], tuple[bool, str]]

log = logging.getLogger(__name__)
# A wait says how far it got at a steady pace: a person sees it from the first seconds, a CI log
# is not flooded.
SAY_EVERY_S = 5.0


def wait_for(
    what: str,
    probe: Probe,
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    exited: Callable[[], int | None] | None = None,
    log_path: Path | None = None,
    log_tail: Callable[[], str] | None = None,
    hint: str | None = None,
) -> float:
    """Poll ``probe`` (→ ``(ready, state)``) until it reports ready; returns the seconds waited.

    A probe that raises a drdrill error stops the wait with it; any other exception is an
    observed state. ``exited`` returns the process's exit code once it has died, so a crashed
    service fails at once instead of after the whole timeout; the failure carries the last lines
    of ``log_path`` or of what ``log_tail`` returns (a container's log)."""
    started = time.monotonic()
    last_state = "not probed yet"
    said = started
    while True:
        try:
            ready, last_state = probe()
        except DrdrillError:
            raise
        except Exception as exc:
            ready, last_state = False, f"{type(exc).__name__}: {exc}"
        if ready:
            return time.monotonic() - started
        code = exited() if exited is not None else None
        elapsed = time.monotonic() - started
        if code is not None or elapsed >= timeout_s:
            if code is not None:
                last_state = f"process exited with status {code} ({last_state})"
            if log_path is None and log_tail is None:
                raise WaitTimedOut(what, elapsed, last_state, hint=hint)
            tail = log_tail() if log_tail is not None else tail_text(log_path, 30) if log_path else ""
            raise ServiceNotReady(what, elapsed if code is not None else timeout_s, last_state, tail,
                                  hint=hint or (f"see {log_path}" if log_path else None))
        if elapsed - (said - started) >= SAY_EVERY_S:
            said = time.monotonic()
            log.info("waiting for %s (%.0fs of at most %.0fs): %s", what, elapsed, timeout_s, last_state[:160])
        time.sleep(interval_s)


def wait_until_ready(service: str, probe: Probe, *, timeout_s: float, log_path: Path,
                     exited: Callable[[], int | None] = lambda: None, hint: str | None = None,
                     interval_s: float = 0.5) -> float:
    """A service's readiness: :func:`wait_for` with its log and process."""
    return wait_for(service, probe, timeout_s=timeout_s, interval_s=interval_s, exited=exited, log_path=log_path,
                    hint=hint)
