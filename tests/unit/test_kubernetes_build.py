"""The Kubernetes build's wrapper module and link flags (pure)."""

from __future__ import annotations

import pytest

from drdrill.errors import ProvisionError
from drdrill.provision.kubernetes import link_flags, wrapper_go_mod

UPSTREAM = """module k8s.io/kubernetes

go 1.24.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""


def test_every_staging_module_is_replaced_by_its_published_version():
    wrapper = wrapper_go_mod(UPSTREAM)
    assert "require k8s.io/kubernetes v1.34.4" in wrapper
    assert "\tk8s.io/api => k8s.io/api v0.34.4\n" in wrapper
    assert "\tk8s.io/client-go => k8s.io/client-go v0.34.4\n" in wrapper
    assert "./staging" not in wrapper


def test_a_go_mod_without_staging_modules_is_refused():
    with pytest.raises(ProvisionError):
        wrapper_go_mod("module k8s.io/kubernetes\n")


def test_link_flags_set_the_version_both_libraries_report():
    flags = link_flags("v1.34.4")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.34.4" in flags and f"-X {package}.gitMinor=34" in flags
