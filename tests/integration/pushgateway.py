"""A real Pushgateway for the metrics tests (Debian's prometheus-pushgateway, which `make tools`
installs), on a free loopback port, in memory; and its figures read back the way Prometheus
scrapes them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

JOB = "drdrill_restore_test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_pushgateway(tmp_path_factory) -> Iterator[str]:
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.skip("prometheus-pushgateway is not installed: `make tools` installs it (Debian package)")
    port = free_port()
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):  # bounded: 30 s for a Go binary to listen
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the Pushgateway exited: {log.read_text(errors='replace')[-500:]}")
                time.sleep(0.2)
        else:
            pytest.fail(f"the Pushgateway did not become ready: {log.read_text(errors='replace')[-500:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def gauges(gateway: str, environment: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """drdrill's samples of ``environment`` on the gateway: (name, other labels) -> value."""
    with urllib.request.urlopen(f"{gateway}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.get("instance") == "":  # the gateway's own empty label
                del labels["instance"]
            if labels.pop("job", None) == JOB and labels.pop("environment", None) == environment \
                    and sample.name.startswith("drdrill_"):
                out[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return out
