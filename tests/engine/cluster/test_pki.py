"""The secured node's certificates and security configuration, without a node (fast)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import bcrypt
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from engine.cluster.pki import ADMIN_DN, NODE_DN, Pki
from engine.cluster.secure import API_USER, INGEST_USER, hash_password, security_config


def test_pki_node_cert_has_loopback_sans_and_admin_dn(tmp_path: Path) -> None:
    pki = Pki.at(tmp_path / "certs", tmp_path / "secrets")
    pki.generate()
    assert pki.exists()
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    node = x509.load_pem_x509_certificate(pki.node_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    for cert in (node, admin):
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    eku = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
    assert node.subject.rfc4514_string() == NODE_DN
    assert (
        admin.subject.rfc4514_string()
        == ADMIN_DN
        == "CN=outfit-admin,OU=outfit-search,O=outfit-local"
    )
    for key in (pki.ca_key, pki.node_key, pki.admin_key):
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8


def test_security_config_scopes_roles_to_the_prefix() -> None:
    docs = security_config("shop", {"admin": "h1", API_USER: "h2", INGEST_USER: "h3"})
    api = docs["roles.yml"]["outfit_api"]
    (perm,) = api["index_permissions"]
    assert perm["allowed_actions"] == ["read"]
    assert all(p.startswith("shop-") for p in perm["index_patterns"])
    assert not any("write" in a or a == "cluster_composite_ops" for a in api["cluster_permissions"])
    ingest = docs["roles.yml"]["outfit_ingest"]
    assert ingest["index_permissions"][0]["index_patterns"] == ["shop-*"]
    assert "crud" in ingest["index_permissions"][0]["allowed_actions"]
    mapping = docs["roles_mapping.yml"]
    assert mapping["outfit_api"]["users"] == [API_USER]
    assert docs["config.yml"]["config"]["dynamic"]["http"]["anonymous_auth_enabled"] is False
    assert docs["internal_users.yml"][API_USER]["hash"] == "h2"


def test_password_hash_is_bcrypt() -> None:
    h = hash_password("s3cret-value")
    assert h.startswith("$2") and "s3cret" not in h
    assert bcrypt.checkpw(b"s3cret-value", h.encode())


def test_secure_node_settings_keep_their_defaults_when_one_is_overridden(
    no_outfit_env: None,
) -> None:
    from engine.settings import Settings

    node = Settings(
        secure_node={"home": "/tmp/elsewhere"}
    ).secure_node  # as OUTFIT_SECURE_NODE__HOME
    assert node.secure and node.port == 9221 and node.transport_port == 9321
    assert node.url == "https://127.0.0.1:9221"
    assert Settings().local_node.url == "http://127.0.0.1:9200"
