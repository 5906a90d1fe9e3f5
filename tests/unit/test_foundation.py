"""Pure parts of the foundation: config, Java choice, endpoints contract, readiness, CLI errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drdrill.adapters.platform import Endpoints
from drdrill.errors import ConfigError, ServiceNotReady
from drdrill.host.process import ProcessRecord
from drdrill.host.readiness import wait_until_ready
from drdrill.provision.java import java_major_of, modules_of, supported_java
from drdrill.settings import StackSettings, load_paths, stack_settings_from_env


def test_paths_for_root_avoid_home_and_honour_overrides():
    as_root = load_paths({"HOME": "/root"}, euid=0)
    assert as_root.cache_dir == Path("/var/cache/drdrill") and as_root.state_dir == Path("/var/lib/drdrill")
    user = load_paths({"HOME": "/home/u", "XDG_CACHE_HOME": "/c"}, euid=1000)
    assert user.cache_dir == Path("/c/drdrill") and user.state_dir == Path("/home/u/.local/state/drdrill")
    custom = load_paths({"HOME": "/h", "DRDRILL_CACHE_DIR": "/x", "DRDRILL_STATE_DIR": "/y"}, euid=0)
    assert (custom.cache_dir, custom.stack_dir("a")) == (Path("/x"), Path("/y/stacks/a"))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"es_version": "9.x"}, "es_version"), ({"es_version": "7.17.0"}, "es_version"),
     ({"es_heap_mb": 100}, "es_heap_mb"), ({"bucket": "Bad_Bucket"}, "bucket"),
     ({"ready_timeout_s": 0}, "timeouts")],
)
def test_invalid_stack_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        StackSettings(**overrides)
    assert err.value.key == key


def test_settings_from_env_then_overrides():
    settings = stack_settings_from_env({"DRDRILL_ES_VERSION": "8.19.21", "DRDRILL_ES_HEAP_MB": "512"})
    assert (settings.es_version, settings.es_heap_mb) == ("8.19.21", 512)
    assert stack_settings_from_env({"DRDRILL_ES_VERSION": "8.19.21"}, es_version="9.5.4").es_version == "9.5.4"
    with pytest.raises(ConfigError, match="DRDRILL_ES_HEAP_MB"):
        stack_settings_from_env({"DRDRILL_ES_HEAP_MB": "lots"})


@pytest.mark.parametrize(("es", "java", "ok"), [(9, 17, False), (9, 21, True), (9, 25, True),
                                               (8, 11, False), (8, 17, True), (8, 25, True), (8, 26, False)])
def test_supported_java(es, java, ok):
    assert supported_java(es, java) is ok


def test_java_release_file_parsing(tmp_path):
    (tmp_path / "release").write_text('JAVA_VERSION="21.0.4"\nMODULES="java.base jdk.incubator.vector"\n')
    assert java_major_of(tmp_path) == 21
    assert "jdk.incubator.vector" in modules_of(tmp_path)
    (tmp_path / "release").write_text('JAVA_VERSION="1.8.0_402"\n')
    assert java_major_of(tmp_path) == 8
    assert java_major_of(tmp_path / "missing") is None


def _endpoints() -> Endpoints:
    return Endpoints("http://127.0.0.1:9200", "http://127.0.0.1:9000", "ak", "s/k", "es-backups",
                     "127.0.0.1", 5432, "es_metadata", "es_user", "p@ss:w/rd", "postgres", "admin-pw",
                     es_repo_root=Path("/r"), versions={"elasticsearch": "9.5.4"})


def test_endpoints_contract_and_round_trip():
    ep = _endpoints()
    data = ep.contract_json()
    assert data["elasticsearch"]["url"] == "http://127.0.0.1:9200"
    assert data["s3"] == {"endpoint": "http://127.0.0.1:9000", "access_key": "ak", "secret_key": "s/k",
                          "bucket": "es-backups"}
    # The password is URL-quoted so the DSN stays parseable.
    assert data["postgres"]["dsn"] == "postgresql://es_user:p%40ss%3Aw%2Frd@127.0.0.1:5432/es_metadata"
    assert Endpoints.from_dict(json.loads(json.dumps(ep.to_dict()))) == ep


def test_process_record_round_trip():
    record = ProcessRecord("postgres", 123, 1700000000.25, int(signal.SIGINT))
    assert ProcessRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_readiness_reports_last_state_and_log_tail(tmp_path):
    log = tmp_path / "console.log"
    log.write_text("starting\nfatal: port in use\n")
    states = iter([(False, "connecting"), (False, "cluster health red")])
    with pytest.raises(ServiceNotReady) as err:
        wait_until_ready("elasticsearch", lambda: next(states, (False, "cluster health red")),
                         timeout_s=0.05, log_path=log, interval_s=0.01)
    assert "elasticsearch" in str(err.value) and "cluster health red" in str(err.value)
    assert "fatal: port in use" in err.value.log_tail


def test_readiness_fails_at_once_when_the_process_died(tmp_path):
    with pytest.raises(ServiceNotReady, match="process exited with status 70"):
        wait_until_ready("minio", lambda: (False, "refused"), timeout_s=3600, log_path=tmp_path / "none",
                         exited=lambda: 70)


def test_readiness_returns_when_ready(tmp_path):
    answers = iter([(False, "starting"), (True, "green")])
    assert wait_until_ready("x", lambda: next(answers), timeout_s=5, log_path=tmp_path / "l", interval_s=0.001) >= 0


@pytest.mark.parametrize("argv", [["stack", "up", "--es-version", "banana"], ["stack", "frobnicate"],
                                  ["no-such-command"], ["stack", "up", "--es-heap-mb", "lots"]])
def test_cli_usage_errors_are_one_line_with_exit_2(argv):
    result = subprocess.run([sys.executable, "-m", "drdrill", *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drdrill: error:")


@pytest.mark.parametrize(("server", "mode"), [("8.19.21", "native"), ("9.5.4", "REST API compatibility with 8.x")])
def test_supported_elasticsearch_versions_and_how_they_are_spoken_to(monkeypatch, server, mode):
    from drdrill.adapters.elasticsearch import SearchCluster

    cluster = SearchCluster("http://127.0.0.1:1")
    monkeypatch.setattr(cluster, "version", lambda: server)
    seen = cluster.compatibility()
    assert seen["elasticsearch"] == server and seen["elasticsearch_api"] == mode
    assert seen["elasticsearch-py"].startswith("8.")


@pytest.mark.parametrize("server", ["7.17.25", "6.8.23", "unknown"])
def test_an_older_elasticsearch_is_a_usage_error_naming_it(monkeypatch, server):
    from drdrill.adapters.elasticsearch import SearchCluster
    from drdrill.errors import UsageError

    cluster = SearchCluster("http://127.0.0.1:1")
    monkeypatch.setattr(cluster, "version", lambda: server)
    with pytest.raises(UsageError, match=f"Elasticsearch {server} .* is not supported"):
        cluster.compatibility()


def test_the_wheel_lists_every_package_of_the_source_tree():
    """setuptools packages are listed by hand (steps/ and features/ are mapped into the
    package); a new sub-package missing from the list installs as an ImportError."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(init.parent.relative_to(root).parts) for init in (root / "drdrill").rglob("__init__.py")}
    assert on_disk - listed == set()


def test_index_names_go_to_elasticsearch_in_batches_that_fit_a_request_line():
    from drdrill.adapters.es_names import _URL_NAMES_CHARS
    from drdrill.adapters.es_names import batches as _batches

    names = [f"org{n:04d}-ns1-data-000" for n in range(1000)]
    batches = _batches(names, suffix="*")
    assert [n for b in batches for n in b] == names and len(batches) > 1
    assert all(len(",".join(f"{n}*" for n in b)) <= _URL_NAMES_CHARS for b in batches)
    assert _batches([]) == [] and _batches(["a"]) == [["a"]]
