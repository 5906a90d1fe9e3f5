"""The cluster's certificates: one CA, the apiserver's serving certificate, client certificates
for each component and the admin, and the service-account key pair. Made with ``cryptography``
(no openssl calls); written once per cluster, private keys mode 0600."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


@dataclass(frozen=True)
class ClientIdentity:
    name: str  # file stem
    common_name: str
    organization: str | None = None


def client_identities(node: str) -> list[ClientIdentity]:
    """Who talks to the apiserver, as Kubernetes' RBAC knows them."""
    return [
        ClientIdentity("admin", "drdrill-admin", "system:masters"),
        ClientIdentity("controller-manager", "system:kube-controller-manager"),
        ClientIdentity("scheduler", "system:kube-scheduler"),
        ClientIdentity("kubelet", f"system:node:{node}", "system:nodes"),
        ClientIdentity("kube-proxy", "system:kube-proxy"),
        ClientIdentity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
    ]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _sign(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False, server: bool = False, client: bool = False,
          sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    else:
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
            ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(root: Path, *, node: str, node_ip: str, service_ip: str) -> None:
    """Everything under ``root`` (created 0700): ca.crt/key, apiserver.crt/key, sa.key/pub,
    <client>.crt/key for each of :func:`client_identities`."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    ca_key = _key()
    ca_name = _name("drdrill-cluster-ca")
    ca = _sign(ca_name, ca_key, ca_name, ca_key, ca=True)
    _write_key(root / "ca.key", ca_key)
    _write_cert(root / "ca.crt", ca)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (
        "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
        "localhost", node)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(("127.0.0.1", node_ip, service_ip))]
    key = _key()
    _write_key(root / "apiserver.key", key)
    _write_cert(root / "apiserver.crt", _sign(_name("kube-apiserver"), key, ca_name, ca_key, server=True, sans=sans))
    for who in client_identities(node):
        key = _key()
        _write_key(root / f"{who.name}.key", key)
        # The kubelet also serves (logs, exec): its certificate is both.
        _write_cert(root / f"{who.name}.crt",
                    _sign(_name(who.common_name, who.organization), key, ca_name, ca_key, client=True,
                          server=who.name == "kubelet",
                          sans=[x509.DNSName(node), x509.IPAddress(ipaddress.ip_address(node_ip))]
                          if who.name == "kubelet" else None))
    sa = _key()
    _write_key(root / "sa.key", sa)
    (root / "sa.pub").write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo))


def kubeconfig(server: str, pki: Path, identity: str) -> str:
    """A kubeconfig for one identity, with file references (no key material inline)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: drdrill
  cluster:
    server: {server}
    certificate-authority: {pki / 'ca.crt'}
users:
- name: {identity}
  user:
    client-certificate: {pki / f'{identity}.crt'}
    client-key: {pki / f'{identity}.key'}
contexts:
- name: drdrill
  context:
    cluster: drdrill
    user: {identity}
current-context: drdrill
"""
