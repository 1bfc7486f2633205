"""A local certificate authority and the secured node's certificates (``cryptography``, PEM).

Three certificates, all signed by one self-made CA:

* the **node** certificate (TLS on HTTP and transport; SAN ``localhost``, ``127.0.0.1``, ``::1``;
  server and client auth, since nodes authenticate each other on the transport layer);
* the **admin** certificate, whose DN is the security plugin's ``authcz.admin_dn`` (the super
  admin that may change the security index, e.g. with ``securityadmin.sh``);
* the CA certificate itself, the file clients give as ``OUTFIT_CLUSTER__CA_CERTS``.

Private keys are unencrypted PKCS#8 PEM (what the security plugin reads) written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORG = "outfit-local"
UNIT = "outfit-search"
VALID_DAYS = 3650


def dn(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


NODE_DN = dn("outfit-secure-node").rfc4514_string()
ADMIN_DN = dn("outfit-admin").rfc4514_string()


@dataclass(frozen=True)
class Pki:
    """Where the PEM files are. ``ca_cert`` is public; keys live in the private folder."""

    ca_cert: Path
    ca_key: Path
    node_cert: Path
    node_key: Path
    admin_cert: Path
    admin_key: Path

    @classmethod
    def at(cls, public_dir: Path, private_dir: Path) -> Pki:
        return cls(
            ca_cert=public_dir / "root-ca.pem",
            ca_key=private_dir / "root-ca-key.pem",
            node_cert=public_dir / "node.pem",
            node_key=private_dir / "node-key.pem",
            admin_cert=public_dir / "admin.pem",
            admin_key=private_dir / "admin-key.pem",
        )

    def files(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.ca_key,
            self.node_cert,
            self.node_key,
            self.admin_cert,
            self.admin_key,
        )

    def exists(self) -> bool:
        return all(p.is_file() for p in self.files())

    def generate(self) -> None:
        """Write a new CA and node/admin certificates (overwriting any previous ones)."""
        now = dt.datetime.now(dt.UTC)
        ca_key = _key()
        ca_name = dn("outfit-local-root-ca")
        ca = (
            _builder(ca_name, ca_name, ca_key, now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(self.ca_key, ca_key)
        _write_public(self.ca_cert, ca.public_bytes(serialization.Encoding.PEM))

        san = x509.SubjectAlternativeName(
            [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]
        )
        node_key = _key()
        node = _leaf(
            dn("outfit-secure-node"),
            node_key,
            ca,
            ca_key,
            now,
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            san,
        )
        _write_key(self.node_key, node_key)
        _write_public(self.node_cert, node.public_bytes(serialization.Encoding.PEM))

        admin_key = _key()
        admin = _leaf(
            dn("outfit-admin"), admin_key, ca, ca_key, now, [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        _write_key(self.admin_key, admin_key)
        _write_public(self.admin_cert, admin.public_bytes(serialization.Encoding.PEM))


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
    )


def _leaf(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    ca: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    now: dt.datetime,
    usages: list[x509.ObjectIdentifier],
    san: x509.SubjectAlternativeName | None = None,
) -> x509.Certificate:
    builder = (
        _builder(subject, ca.subject, key, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (0600 from creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
