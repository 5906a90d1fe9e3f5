"""What a service that died while starting said about why: its own fatal error, found in its log.

A readiness failure that only quotes the log's last line says "Elasticsearch died while starting
up, exit code: 1" (the launcher's epitaph), not the cause, which Elasticsearch logs earlier as
"fatal exception while booting Elasticsearch" with a chain of "Caused by:" lines (a port already
bound, a data path whose ``node.lock`` another node holds). The functions here read that text;
:func:`port_holder` says who holds a port a bind failed on.
"""

from __future__ import annotations

import re

import psutil

# Elasticsearch's server logs this (console and <cluster>.log) when start-up fails.
_ES_FATAL = re.compile(r"fatal exception while booting Elasticsearch\s*(?P<what>.*)")
_CAUSED_BY = re.compile(r"^\s*Caused by:\s*(?P<what>.+)")
# The launcher's own lines (about the server, not a cause), and a JVM that could not start.
_EPITAPHS = ("Elasticsearch died while starting up", "Elasticsearch did not exit normally",
             "Elasticsearch exited unexpectedly")
_JVM_FATAL = re.compile(r"^(Error: Could not create the Java Virtual Machine|Error occurred during initialization of VM"
                        r"|There is insufficient memory for the Java Runtime|Exception in thread \"main\" .+|"
                        r"Invalid maximum heap size.*|Unrecognized VM option.*)")
# The launcher's own errors ("ERROR: [1] bootstrap checks failed ...", "ERROR: setting [x] ...").
_CLI_ERROR = re.compile(r"^ERROR: (?P<what>.+)")
# PostgreSQL ("FATAL:  ..."), MinIO ("FATAL Unable to ...", "ERROR Unable to ..."), log4j ("[ERROR]").
_GENERIC = re.compile(r"(?:^|\s)(?:FATAL:?|PANIC:|\[ERROR\s*\]\[[^\]]+\]\s*(?:\[[^\]]+\]\s*)?)\s*(?P<what>\S.*)")
_BIND_PORT = re.compile(r"(?:Failed to bind to|bind(?:ing)? to) (?:\[?[\d.:]*\]?):(?P<port>\d{1,5})")


def fatal_cause(text: str) -> str | None:
    """The service's own statement of why it stopped, from its log text; None if there is none.

    Elasticsearch's "fatal exception while booting" wins, followed by its innermost "Caused by"
    (the root: ``java.net.BindException: Address already in use``); then the launcher's
    ``ERROR:`` lines, a JVM that could not start, and any FATAL/ERROR line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        found = _ES_FATAL.search(line)
        if found:
            what = found.group("what").strip() or _next_text(lines, i)
            root = None
            for later in lines[i + 1:]:
                caused = _CAUSED_BY.match(later)
                if caused:
                    root = caused.group("what").strip()
                elif later.strip() and not later.startswith(("\t", " ")) and not later.startswith("Caused by"):
                    break  # the stack trace ended
            if root and root not in what:
                return f"{what} (caused by {root})"
            return what or "fatal exception while booting Elasticsearch"
    for pattern in (_CLI_ERROR, _JVM_FATAL):
        for line in lines:
            matched = pattern.match(line.strip())
            if matched and not any(e in line for e in _EPITAPHS):
                return _with_detail(lines, lines.index(line), line.strip().removeprefix("ERROR: "))
    for line in lines:
        matched = _GENERIC.search(line)
        if matched and not any(e in line for e in _EPITAPHS):
            return matched.group("what").strip()[:500]
    return None


def _next_text(lines: list[str], i: int) -> str:
    return next((line.strip() for line in lines[i + 1:] if line.strip()), "")


def _with_detail(lines: list[str], i: int, what: str) -> str:
    """A launcher error that announces its reasons on the following lines (bootstrap checks)."""
    detail = [line.strip() for line in lines[i + 1:i + 4] if line.strip().startswith("bootstrap check failure")]
    return "; ".join([what, *detail])[:800]


def bind_port(cause: str) -> int | None:
    """The port a bind failure names ("Failed to bind to 127.0.0.1:37983"), if it is one."""
    found = _BIND_PORT.search(cause)
    return int(found.group("port")) if found and "bind" in cause.lower() else None


def port_holder(port: int) -> str | None:
    """Who listens on (or is connected from) ``port`` on this host: "pid 123 (java)"; None if
    nobody does now, or the table cannot be read (another user's sockets without root)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    owned, orphans = [], []
    for conn in connections:
        if conn.laddr and conn.laddr.port == port:
            if not conn.pid:  # a connection no process holds any more (closing, or not yet accepted)
                orphans.append(f"a socket ({conn.status})")
                continue
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "exited"
            owned.append(f"pid {conn.pid} ({name}, {conn.status})")
    return ", ".join(sorted(set(owned or orphans))) or None
