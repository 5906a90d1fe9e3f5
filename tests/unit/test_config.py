"""Drill settings from TOML: values land where they should, typos and bad values are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from drdrill.adapters.crypto import RECOMMENDED_PBKDF2_ITERATIONS
from drdrill.core.layout import Tenant
from drdrill.errors import ConfigError, UsageError
from drdrill.settings import DrillSettings, Paths, check_stack_name, load_settings, settings_from_dict


def test_full_file(tmp_path):
    path = tmp_path / "drdrill.toml"
    path.write_text('[objectives]\nrto = "10m"\nrpo = "1h"\n[data]\ntenants = ["a/b", "c/d"]\n'
                    'indices_per_tenant = 3\ndocs_per_index = 50\n[canary]\ninterval = "100ms"\npost_backup = "5s"\n'
                    '[encryption]\npbkdf2 = true\niterations = 1000\n')
    settings = load_settings(path)
    assert (settings.objectives.rto_seconds, settings.objectives.rpo_seconds) == (600, 3600)
    assert settings.tenants == [Tenant("a", "b"), Tenant("c", "d")]
    assert (settings.data.indices_per_tenant, settings.data.docs_per_index) == (3, 50)
    assert (settings.canary_interval_s, settings.post_backup_s) == (0.1, 5)
    assert settings.kdf.pbkdf2 and settings.kdf.iterations == 1000 and not settings.kdf.is_weak


def test_missing_keys_keep_defaults():
    base = DrillSettings()
    settings = settings_from_dict({"objectives": {"rto": "5m"}}, base)
    assert settings.objectives.rto_seconds == 300 and settings.objectives.rpo_seconds == base.objectives.rpo_seconds
    assert settings.tenants == base.tenants
    assert settings_from_dict({"restore": {"concurrency": 1}}, base).restore_concurrency == 1


@pytest.mark.parametrize(("raw", "key"), [
    ({"objectivs": {}}, "config"),
    ({"objectives": {"rt0": "5m"}}, "[objectives]"),
    ({"objectives": {"rto": "soon"}}, "objectives.rto"),
    ({"data": {"tenants": []}}, "data.tenants"),
    ({"data": {"tenants": ["BAD/x"]}}, "org_id"),
    ({"data": {"docs_per_index": "many"}}, "data.docs_per_index"),
    ({"canary": "fast"}, "[canary]"),
    ({"canary": {"interval": "0s"}}, "canary.interval"),
    ({"canary": {"interval": 0}}, "canary.interval"),
    ({"encryption": {"pbkdf2": "no"}}, "encryption.pbkdf2"),
    ({"encryption": {"pbkdf2": 1}}, "encryption.pbkdf2"),
    ({"encryption": {"iterations": True}}, "encryption.iterations"),
    ({"encryption": {"md": 5}}, "encryption.md"),
    ({"data": {"indices_per_tenant": True}}, "data.indices_per_tenant"),
    ({"data": {"tenants": ["a-b/c", "a/b-c"]}}, "ambiguous"),
    ({"objectives": {"rto": "١٢s"}}, "objectives.rto"),
    ({"objectives": {"rto": "9" * 400}}, "objectives.rto"),
    ({"restore": {"concurrency": 0}}, "restore.concurrency"),
    ({"restore": {"concurrency": "4"}}, "restore.concurrency"),
    ({"restore": {"paralel": 4}}, "[restore]"),
])
def test_bad_values_name_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        settings_from_dict(raw, DrillSettings())
    assert key in err.value.one_line()


def test_unreadable_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_settings(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[objectives\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_settings(bad)


def test_pbkdf2_without_iterations_uses_the_recommended_count():
    settings = settings_from_dict({"encryption": {"pbkdf2": True}}, DrillSettings())
    assert settings.kdf.pbkdf2 and settings.kdf.iterations == RECOMMENDED_PBKDF2_ITERATIONS
    assert not settings_from_dict({"encryption": {"pbkdf2": False}}, DrillSettings()).kdf.pbkdf2


def test_nested_but_distinct_tenants_are_allowed():
    # org1/ns1 and org1/ns1-x name different indices; the rows, not the prefix, say whose is whose.
    settings = settings_from_dict({"data": {"tenants": ["org1/ns1", "org1/ns1-x"]}}, DrillSettings())
    assert [t.key for t in settings.tenants] == ["org1/ns1", "org1/ns1-x"]


@pytest.mark.parametrize("name", ["", "..", ".", "/tmp/x", "a/b", ".hidden", "-x", "a" * 64, "x\ny", "ä"])
def test_stack_names_are_one_safe_segment(name):
    with pytest.raises(UsageError, match="not valid"):
        check_stack_name(name, "--name")
    with pytest.raises(UsageError):
        Paths(Path("/c"), Path("/s")).stack_dir(name)


def test_stack_dir_stays_inside_the_stacks_directory(tmp_path):
    paths = Paths(tmp_path / "cache", tmp_path / "state")
    assert paths.stack_dir("default") == tmp_path / "state" / "stacks" / "default"
    paths.stacks_dir.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (paths.stacks_dir / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="outside"):
        paths.check_stack_dir(paths.stack_dir("planted"))


def test_the_starter_settings_are_one_template_that_parses_whole():
    """`drdrill init` writes drdrill/settings/starter.toml: every section drdrill knows is in it
    (commented where it needs the user's values), and it parses, commented parts included."""
    import re
    import tomllib

    from drdrill.cli.project import starter_settings
    from drdrill.settings import _KNOWN, DrillSettings, settings_from_dict

    text = starter_settings()
    assert {m for m in re.findall(r"^#? ?\[(\w+)\]", text, flags=re.M)} == set(_KNOWN)
    settings_from_dict(tomllib.loads(text), DrillSettings(), source="starter")
    uncommented = re.sub(r"^# (\[|\w+ = )", r"\1", text, flags=re.M)
    parsed = settings_from_dict(tomllib.loads(uncommented), DrillSettings(), source="starter, uncommented")
    assert parsed.target is not None and parsed.target.tenants_query is not None
    assert parsed.evidence_key_file == "drdrill-evidence.key"
