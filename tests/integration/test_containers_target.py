"""`--target containers`: the same drills on a real Docker engine, with drdrill's own images.

The engine is the one at DOCKER_HOST / the default socket, or drdrill's own dockerd (installed
and started on first use, as `make test` does on a fresh machine); the images are built once per
machine (`drdrill images build`). Every case ends with nothing labelled by drdrill left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drdrill.errors import ServiceNotReady
from drdrill.settings import ContainerImages, stack_settings_from_env
from drdrill.targets.containers.specs import container_name, volume_name
from drdrill.targets.containers.stack import ContainerStack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.containers]

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def no_leftovers(engine) -> Iterator[None]:
    """Nothing drdrill labels may outlive the case (containers, networks, volumes)."""
    before = engine.labelled()
    yield
    assert engine.labelled() == before


def drdrill(*args: str, env: dict[str, str] | None = None, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drdrill", "-q", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or dict(os.environ), check=False)


def test_images_build_once_then_come_from_the_cache(engine):
    first = drdrill("images", "build", "--json")
    assert first.returncode == 0, first.stderr
    second = json.loads(drdrill("images", "build", "--json").stdout)["images"]
    # pause and toolbox for Kubernetes; drdrill (the in-cluster restore test) and its Pushgateway
    assert {row["service"] for row in second.values()} == {"base", "postgres", "elasticsearch", "minio", "toxiproxy",
                                                          "pause", "toolbox", "drdrill", "pushgateway"}
    assert not any(row["built"] for row in second.values())  # nothing changed: nothing rebuilt
    assert {tag: row["id"] for tag, row in json.loads(first.stdout)["images"].items()} == \
        {tag: row["id"] for tag, row in second.items()}


def test_the_default_drill_passes_on_containers_and_local_with_the_same_counts(engine, tmp_path, no_leftovers):
    def run(target: str) -> tuple[subprocess.CompletedProcess[str], dict]:
        report_dir = tmp_path / target
        result = drdrill("run", "--target", target, "--report-dir", str(report_dir), "--project-dir", str(tmp_path))
        return result, json.loads((report_dir / "report.json").read_text())

    on_containers, containers_report = run("containers")
    on_local, local_report = run("local")
    assert on_containers.returncode == 0, on_containers.stdout[-3000:] + on_containers.stderr[-2000:]
    assert on_local.returncode == 0, on_local.stdout[-3000:] + on_local.stderr[-2000:]
    assert "on containers: PASSED" in on_containers.stdout and "on local: PASSED" in on_local.stdout

    def counts(report: dict) -> dict[str, list[tuple[str, int, int]]]:
        return {f"{t['org_id']}/{t['namespace']}": sorted((i["name"], i["docs_expected"], i["docs_restored"])
                                                          for i in t["indices"]) for t in report["tenants"]}

    assert counts(containers_report) == counts(local_report) and counts(local_report)
    assert [s["name"] for s in containers_report["scenarios"]] == [s["name"] for s in local_report["scenarios"]]
    # The summary has the same shape on both targets: lines differ only in figures and names.
    assert [line.split()[0] for line in on_containers.stdout.splitlines() if line.strip()][:6] == \
        [line.split()[0] for line in on_local.stdout.splitlines() if line.strip()][:6]
    facts = containers_report["evidence"]["notes"]["target"]
    assert facts["kind"] == "containers" and facts["engine"]["version"]
    images = facts["images"]
    assert set(images) == {"elasticsearch", "minio", "postgres", "toxiproxy"}
    assert all(image["id"].startswith("sha256:") for image in images.values())


@pytest.fixture
def stack(paths, engine) -> Iterator[ContainerStack]:
    stack = ContainerStack(paths, stack_settings_from_env(), stack_name=f"pytest-c-{uuid.uuid4().hex[:6]}",
                           engine=engine)
    try:
        yield stack
    finally:
        stack.down(purge=True)


def test_a_disaster_kills_containers_and_removes_volumes_and_redeploys_at_the_same_address(stack, engine):
    from drdrill.adapters.platform import Platform

    ep = stack.up()
    platform = Platform.from_endpoints(ep)
    try:
        platform.cluster.create_index("survivor-check")
    finally:
        platform.close()
    es = container_name(stack.stack_name, "elasticsearch")
    first_id = engine.container(es).id
    assert stack.destroy(["elasticsearch", "postgres"]) == ["elasticsearch", "postgres"]
    assert engine.container(es) is None
    assert volume_name(stack.stack_name, "elasticsearch") not in engine.labelled(stack.stack_name)["volumes"]
    assert volume_name(stack.stack_name, "minio") in engine.labelled(stack.stack_name)["volumes"]  # off-site
    again = stack.redeploy(["elasticsearch", "postgres"])
    assert (again.elasticsearch_url, again.pg_port) == (ep.elasticsearch_url, ep.pg_port)
    assert engine.container(es).id != first_id
    platform = Platform.from_endpoints(again)
    try:
        assert "survivor-check" not in platform.cluster.indices("*")  # a new, empty node
    finally:
        platform.close()
    # Faults: a paused container is "stopped", as a SIGSTOPped process on the local target.
    import signal

    stack.signal_service("postgres", signal.SIGSTOP)
    assert stack.process_state("postgres").startswith("stopped")
    stack.signal_service("postgres", signal.SIGCONT)
    assert stack.process_state("postgres") == "running"
    published = engine.container(es).attrs["HostConfig"]["PortBindings"]["9200/tcp"]
    assert [b["HostIp"] for b in published] == ["127.0.0.1"]  # loopback only


def test_down_removes_everything_by_label_even_without_its_state_file(stack, engine):
    stack.up()
    assert len(engine.labelled(stack.stack_name)["containers"]) == 4  # the three services and Toxiproxy
    stack.state_path.unlink()  # as after a crash of the harness
    result = drdrill("stack", "down", "--target", "containers", "--name", stack.stack_name, "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["stopped"]) == ["elasticsearch", "minio", "postgres", "toxiproxy"]
    assert engine.labelled(stack.stack_name) == {"containers": [], "networks": [], "volumes": []}


def test_a_service_that_never_gets_ready_fails_with_its_last_log_line_and_leaves_nothing(paths, engine, no_leftovers):
    # The Debian base runs bash and exits: PostgreSQL never answers.
    broken = ContainerStack(paths, stack_settings_from_env(), stack_name=f"pytest-c-{uuid.uuid4().hex[:6]}",
                            images=ContainerImages(postgres="drdrill/debian:bookworm"), engine=engine)
    try:
        with pytest.raises(ServiceNotReady) as failure:
            broken.up()
        assert failure.value.service == "postgres" and "exited with status" in failure.value.last_state
        assert not broken.state_path.exists()
    finally:
        broken.down(purge=True)


def test_no_engine_at_docker_host_is_a_usage_error_naming_it(tmp_path, paths):
    stacks_before = set(paths.stacks_dir.glob("*"))
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no.sock")
    result = drdrill("run", "--target", "containers", "--report-dir", str(tmp_path / "r"), "--project-dir",
                     str(tmp_path), env=env, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no Docker engine answers" in result.stderr and "no.sock" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()
    assert set(paths.stacks_dir.glob("*")) == stacks_before  # no work directory left behind
