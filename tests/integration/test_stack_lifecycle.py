"""Starting and stopping stacks: versions, two stacks at once, and no leftovers even after
the harness itself was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import psutil
import pytest

from drdrill.host import process
from drdrill.settings import DEFAULT_ES8_VERSION, stack_settings_from_env
from drdrill.targets.local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ports_listening(ports: set[int]) -> set[int]:
    return {c.laddr.port for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in ports}


def _state(stack: LocalStack) -> dict:
    return json.loads(stack.state_path.read_text())


def test_elasticsearch_8_runs_beside_the_session_stack(paths, session_stack, endpoints):
    """ES 8.19.x is startable (users run both majors), and a second stack does not collide
    with the one already running."""
    stack = LocalStack(paths, replace(stack_settings_from_env(), es_version=DEFAULT_ES8_VERSION),
                       stack_name=f"pytest-es8-{uuid.uuid4().hex[:6]}")
    try:
        es8 = stack.up()
        assert es8.versions["elasticsearch"] == DEFAULT_ES8_VERSION
        assert endpoints.versions["elasticsearch"].startswith("9.")
        assert {es8.elasticsearch_url, es8.s3_endpoint} & {endpoints.elasticsearch_url, endpoints.s3_endpoint} == set()
        assert es8.pg_port != endpoints.pg_port
        assert session_stack.status()["up"] and stack.status()["up"]
        pids = [r["pid"] for r in stack.status()["services"]]
    finally:
        stack.down(purge=True)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert session_stack.status()["up"], "stopping one stack must not touch another"


def test_down_after_the_harness_was_killed_leaves_no_process_or_port(paths, tmp_path):
    """`up` runs in a child process that is SIGKILLed as soon as the services are starting;
    a later `down` (another process, knowing only the work dir) must still stop them all."""
    name = f"pytest-crash-{uuid.uuid4().hex[:6]}"
    stack = LocalStack(paths, stack_settings_from_env(), stack_name=name)
    child = subprocess.Popen(
        [sys.executable, "-m", "drdrill", "-q", "stack", "up", "--name", name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if stack.state_path.exists() and len(_state(stack).get("processes", [])) == 3:
                break
            assert child.poll() is None, "stack up ended before the services were started"
            time.sleep(0.2)
        else:
            pytest.fail("stack up never recorded its three processes")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        records = [process.ProcessRecord.from_dict(r) for r in _state(stack)["processes"]]
        ports = {int(v["port"]) for v in _state(stack)["services"].values()}
        assert any(process.is_running(r) for r in records), "services should outlive the killed harness"
    finally:
        if child.poll() is None:
            child.kill()
        stopped = stack.down(purge=True)
    assert sorted(stopped) == ["elasticsearch", "minio", "postgres"]
    assert not any(process.members(r) for r in records)
    assert _ports_listening(ports) == set()


def test_cli_up_json_status_down(paths):
    name = f"pytest-cli-{uuid.uuid4().hex[:6]}"
    cli = [sys.executable, "-m", "drdrill", "-q", "stack"]
    up = subprocess.run([*cli, "up", "--json", "--name", name], capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        data = json.loads(up.stdout)
        assert data["elasticsearch"]["url"].startswith("http://127.0.0.1:")
        assert set(data["s3"]) >= {"endpoint", "access_key", "secret_key", "bucket"}
        assert data["s3"]["bucket"] == "es-backups"
        assert data["postgres"]["dsn"].startswith("postgresql://es_user:")
        status = subprocess.run([*cli, "status", "--json", "--name", name], capture_output=True, text=True)
        assert status.returncode == 0
        rows = json.loads(status.stdout)["services"]
        assert all(r["healthy"] for r in rows) and len(rows) == 3
        pids = [r["pid"] for r in rows]
    finally:
        down = subprocess.run([*cli, "down", "--purge", "--json", "--name", name], capture_output=True, text=True)
    assert down.returncode == 0 and sorted(json.loads(down.stdout)["stopped"]) == ["elasticsearch", "minio", "postgres"]
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    again = subprocess.run([*cli, "status", "--name", name], capture_output=True, text=True)
    assert again.returncode == 1 and "down" in again.stdout


@pytest.mark.parametrize("name", ["{victim}", "..", "", ".", "../../x", "a/b"])
def test_a_stack_name_is_never_a_path(paths, tmp_path, name):
    """Regression: `stack down --name /some/dir --purge` deleted that directory, and up/down
    changed its mode. Every spelling that leaves the stacks directory is refused (exit 2, the
    value named) before anything is touched."""
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data").write_text("keep me")
    victim.chmod(0o750)
    value = name.format(victim=victim)
    for command in (["down", "--purge"], ["up"], ["status"]):
        result = subprocess.run([sys.executable, "-m", "drdrill", "stack", *command, "--name", value],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert repr(value) in result.stderr and "Traceback" not in result.stderr
    assert (victim / "data").read_text() == "keep me"
    assert victim.stat().st_mode & 0o777 == 0o750
    assert not (paths.state_dir / "x").exists()


def test_a_link_planted_in_the_stacks_directory_is_not_followed(paths, tmp_path):
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data").write_text("keep me")
    paths.stacks_dir.mkdir(parents=True, exist_ok=True)
    link = paths.stacks_dir / f"pytest-link-{uuid.uuid4().hex[:6]}"
    link.symlink_to(victim)
    try:
        result = subprocess.run([sys.executable, "-m", "drdrill", "stack", "down", "--purge", "--name", link.name],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "outside" in result.stderr
        assert (victim / "data").read_text() == "keep me"
    finally:
        link.unlink()
