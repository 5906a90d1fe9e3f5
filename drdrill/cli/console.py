"""The terminal as drdrill writes to it: one format for every line on stderr (progress and logs
alike), and on a terminal one live line for how far a long call got, cleared before any other
line is written so that the two never garble each other."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

FORMAT = "%(asctime)s %(levelname).1s %(message)s"
TIME_FORMAT = "%H:%M:%S"


class Console:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._pending = False  # a live line is on the terminal
        self._lock = threading.Lock()  # restores report from worker threads

    def clear(self) -> None:
        """Take the live line away (before a line that must stay)."""
        if self._pending:
            self.stream.write("\r\033[K")
            self._pending = False

    def say(self, message: str, transient: bool = False) -> None:
        """A progress line: on a terminal a transient one replaces the previous one; elsewhere (CI)
        every line stays, in the log's format."""
        with self._lock:
            stamp = time.strftime(TIME_FORMAT)
            if transient and self.live:
                self.stream.write(f"\r\033[K{stamp} I   {message}")
                self._pending = True
            else:
                self.clear()
                self.stream.write(f"{stamp} I {'  ' if transient else ''}{message}\n")
            self.stream.flush()

    def write_record(self, text: str) -> None:
        with self._lock:
            self.clear()
            self.stream.write(text + "\n")
            self.stream.flush()


class ConsoleHandler(logging.Handler):
    """Log records through the console: the live line is cleared before each."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.setFormatter(logging.Formatter(FORMAT, TIME_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.write_record(self.format(record))
        except Exception:  # a broken terminal must not break the drill
            self.handleError(record)


CONSOLE = Console()
