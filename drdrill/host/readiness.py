"""The one bounded wait: poll a probe until it says ready, and fail with the last observed
state (and, for a service, its log's last lines and whether its process died)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from drdrill.errors import DrdrillError, ServiceNotReady, WaitTimedOut
from drdrill.host.fatal import bind_port, fatal_cause, port_holder
from drdrill.host.tools import tail_text

Probe = Callable[[], tuple[bool, str]]

log = logging.getLogger(__name__)
# A wait says how far it got at a steady pace: a person sees it from the first seconds, a CI log
# is not flooded.
SAY_EVERY_S = 5.0
# A failure keeps this many log lines; the fatal error is looked for further back (Elasticsearch's
# stack trace of a bind failure alone is ~50 lines, followed by its shutdown).
TAIL_LINES = 30
CAUSE_LINES = 400


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
            text = log_tail() if log_tail is not None else tail_text(log_path, CAUSE_LINES) if log_path else ""
            cause = startup_cause(text, local=log_path is not None and log_tail is None)
            tail = "\n".join(text.splitlines()[-TAIL_LINES:])
            raise ServiceNotReady(what, elapsed if code is not None else timeout_s, last_state, tail,
                                  hint=hint or (f"see {log_path}" if log_path else None), cause=cause)
        if elapsed - (said - started) >= SAY_EVERY_S:
            said = time.monotonic()
            log.info("waiting for %s (%.0fs of at most %.0fs): %s", what, elapsed, timeout_s, last_state[:160])
        time.sleep(interval_s)


def startup_cause(text: str, *, local: bool) -> str | None:
    """The service's own fatal error in its log; for a bind failure of a process on this host,
    also who holds that port now (another stack's node, a leftover process), which is what to fix."""
    cause = fatal_cause(text)
    port = bind_port(cause) if cause else None
    if cause and port is not None and local:
        holder = port_holder(port)
        cause += f"; port {port} is held by {holder}" if holder else \
            f"; nothing holds port {port} any more (something held it while the node started)"
    return cause


def wait_until_ready(service: str, probe: Probe, *, timeout_s: float, log_path: Path,
                     exited: Callable[[], int | None] = lambda: None, hint: str | None = None,
                     interval_s: float = 0.5) -> float:
    """A service's readiness: :func:`wait_for` with its log and process."""
    return wait_for(service, probe, timeout_s=timeout_s, interval_s=interval_s, exited=exited, log_path=log_path,
                    hint=hint)
