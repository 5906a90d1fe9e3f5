"""The cluster's PKI (no cluster needed): who each certificate says it is, and its private keys' modes."""

from __future__ import annotations

import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drdrill.targets.kubernetes.pki import client_identities, kubeconfig, make_pki


def test_certificates_name_the_identities_rbac_knows(tmp_path):
    make_pki(tmp_path / "pki", node="node1", node_ip="192.0.2.7", service_ip="10.96.0.1")
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.crt").read_bytes())
    for who in client_identities("node1"):
        cert = x509.load_pem_x509_certificate((tmp_path / "pki" / f"{who.name}.crt").read_bytes())
        assert cert.issuer == ca.subject
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == who.common_name
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
        assert stat.S_IMODE((tmp_path / "pki" / f"{who.name}.key").stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate((tmp_path / "pki" / "apiserver.crt").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "192.0.2.7", "10.96.0.1"}
    text = kubeconfig("https://192.0.2.7:6443", tmp_path / "pki", "admin")
    assert "client-key:" in text and "BEGIN" not in text  # references, no key material inline
