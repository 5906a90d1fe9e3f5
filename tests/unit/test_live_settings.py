"""The live target's [target] table: parsed and checked without touching any service."""

from __future__ import annotations

import pytest

from drdrill.core.layout import Tenant
from drdrill.errors import ConfigError, PasswordSourceError
from drdrill.settings.live import LiveSecrets, LiveTargetSettings

BASE = {
    "environment": "staging", "elasticsearch_url": "https://es.example:9200", "s3_endpoint": "https://s3.example",
    "s3_bucket": "es-backups", "s3_access_key_env": "S3_AK", "s3_secret_key_env": "S3_SK",
    "postgres_dsn_env": "PG_DSN", "dump_password_env": "DB_PW", "repository": "s3",
}
ENV = {"S3_AK": "root-ak", "S3_SK": "root-sk", "PG_DSN": "postgresql://u:p@db/es_metadata", "DB_PW": "pw",
       "T1_AK": "t1-ak", "T1_SK": "t1-sk"}


def test_tenant_credentials_are_read_from_where_the_table_says_and_never_shown(tmp_path):
    secret_file = tmp_path / "t2.secret"
    secret_file.write_text("t2-sk\n")
    table = {**BASE, "tenant_credentials": {
        "org1/ns1": {"access_key_env": "T1_AK", "secret_key_env": "T1_SK"},
        "org2/ns1": {"access_key_env": "T1_AK", "secret_key_file": str(secret_file)}}}
    settings = LiveTargetSettings.from_table(table)
    assert [c.tenant for c in settings.tenant_credentials] == [Tenant("org1", "ns1"), Tenant("org2", "ns1")]
    assert settings.describe()["tenant_credentials"] == ["org1/ns1", "org2/ns1"]
    secrets = LiveSecrets.read(settings, ENV)
    assert secrets.tenant_keys == {"org1/ns1": ("t1-ak", "t1-sk"), "org2/ns1": ("t1-ak", "t2-sk")}
    assert "t1-sk" not in repr(secrets) and "t2-sk" not in repr(settings)
    assert LiveTargetSettings.from_table(BASE).tenant_credentials == ()


@pytest.mark.parametrize(("credentials", "words"), [
    ("not a table", "must be a table of tenants"),
    ({"org1/ns1": "T1_AK"}, "must be a table with access_key_env"),
    ({"org1/ns1": {"access_key_env": "T1_AK"}}, "secret_key_env"),
    ({"org1/ns1": {"access_key_env": "T1_AK", "secret_key_env": "T1_SK", "password": "x"}}, "unknown key(s) password"),
    ({"org1/ns1": {"access_key_env": "A", "access_key_file": "/f", "secret_key_env": "T1_SK"}}, "not both"),
    ({"Org 1/ns1": {"access_key_env": "T1_AK", "secret_key_env": "T1_SK"}}, "org"),
])
def test_bad_tenant_credentials_name_the_key(credentials, words):
    with pytest.raises(ConfigError) as err:
        LiveTargetSettings.from_table({**BASE, "tenant_credentials": credentials})
    assert words in err.value.one_line()


def test_a_missing_tenant_secret_names_the_variable_not_a_value():
    table = {**BASE, "tenant_credentials": {"org1/ns1": {"access_key_env": "T1_AK", "secret_key_env": "NOPE"}}}
    with pytest.raises(PasswordSourceError) as err:
        LiveSecrets.read(LiveTargetSettings.from_table(table), ENV)
    assert "NOPE" in err.value.one_line() and "tenant_credentials.org1/ns1.secret_key" in err.value.one_line()
