"""The secured local node: ``python -m engine.cluster up --secure``.

The same node as :class:`engine.cluster.local.LocalNode` plus the OpenSearch security plugin
(``org.opensearch.plugin:opensearch-security``, from Maven Central, sha256-pinned like the
distribution), in its own home (default ``.local-opensearch-secure/``, HTTPS port 9221,
transport 9321; ``OUTFIT_SECURE_NODE__*``):

* TLS on HTTP and transport with a local CA and node/admin certificates (:mod:`.pki`);
* HTTP basic auth against the plugin's internal users, no anonymous access;
* three users with generated passwords (never the demo defaults):

  ``admin``          all access (config apply, anything else)
  ``outfit-api``     what the API needs: read the products, looks and settings indices of the
                     prefix, cluster health, the search pipeline; no writes
  ``outfit-ingest``  the writer: creates and writes the prefix's indices (ingest, looks), and
                     tuning (the settings index and the hybrid search pipeline)

Layout of the home, besides the installation::

    certs/root-ca.pem            the CA clients trust (OUTFIT_CLUSTER__CA_CERTS)
    secrets/ (0700)              credentials.json, <user>.env, CA/admin keys; files 0600
    security-config.sha256       what the security index was initialised from

The security index is initialised from our YAML files on the first start
(``plugins.security.allow_default_init_securityindex``); when that configuration changes (new
users, another index prefix) the node's data folder is reset: this is a throwaway local node.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import shutil
import ssl
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from engine.cluster.artifacts import security_plugin
from engine.cluster.local import LocalNode, NodeStatus
from engine.cluster.pki import ADMIN_DN, NODE_DN, Pki, write_private
from engine.errors import ProvisionError
from engine.settings import ClusterSettings, LocalNodeSettings

logger = logging.getLogger(__name__)

ADMIN_USER = "admin"
API_USER = "outfit-api"
INGEST_USER = "outfit-ingest"
USERS = (ADMIN_USER, API_USER, INGEST_USER)

# Cluster-level actions each role needs (checked against what our code calls on Backend):
# health and info (/health, wait_for_health), reading the hybrid search pipeline (search,
# tuning view), mget/msearch (composite read ops). The writer also bulk-indexes and puts the
# search pipeline (tuning). Index templates, stored templates and the pipeline's first install
# (config apply) are admin work.
_READ_CLUSTER = [
    "cluster_composite_ops_ro",
    "cluster:monitor/health",
    "cluster:monitor/main",
    "cluster:admin/search/pipeline/get",
]
_WRITE_CLUSTER = [*_READ_CLUSTER, "cluster_composite_ops", "cluster:admin/search/pipeline/put"]
_WRITE_INDEX_ACTIONS = [
    "crud",
    "create_index",
    "indices:admin/get",
    "indices:admin/mappings/get",
    "indices:admin/refresh*",
    "indices:admin/settings/update",
    "indices:monitor/settings/get",
]


def security_config(prefix: str, hashes: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The security plugin's YAML documents (file name -> content) for our users and roles."""

    def meta(kind: str) -> dict[str, Any]:
        return {"_meta": {"type": kind, "config_version": 2}}

    read_patterns = [f"{prefix}-products*", f"{prefix}-looks*", f"{prefix}-settings"]
    return {
        "config.yml": {
            **meta("config"),
            "config": {
                "dynamic": {
                    "http": {"anonymous_auth_enabled": False},
                    "authc": {
                        "basic_internal_auth_domain": {
                            "description": "HTTP basic auth against the internal users",
                            "http_enabled": True,
                            "transport_enabled": True,
                            "order": 0,
                            "http_authenticator": {"type": "basic", "challenge": True},
                            "authentication_backend": {"type": "intern"},
                        }
                    },
                }
            },
        },
        "internal_users.yml": {
            **meta("internalusers"),
            ADMIN_USER: {
                "hash": hashes[ADMIN_USER],
                "reserved": True,
                "backend_roles": ["admin"],
                "description": "outfit-search local admin (config apply)",
            },
            API_USER: {"hash": hashes[API_USER], "description": "the API: read only"},
            INGEST_USER: {"hash": hashes[INGEST_USER], "description": "ingest and tuning"},
        },
        "roles.yml": {
            **meta("roles"),
            "outfit_api": {
                "cluster_permissions": _READ_CLUSTER,
                "index_permissions": [
                    {"index_patterns": read_patterns, "allowed_actions": ["read"]}
                ],
            },
            "outfit_ingest": {
                "cluster_permissions": _WRITE_CLUSTER,
                "index_permissions": [
                    {"index_patterns": [f"{prefix}-*"], "allowed_actions": _WRITE_INDEX_ACTIONS}
                ],
            },
        },
        "roles_mapping.yml": {
            **meta("rolesmapping"),
            "all_access": {"backend_roles": ["admin"], "users": [ADMIN_USER]},
            "outfit_api": {"users": [API_USER]},
            "outfit_ingest": {"users": [INGEST_USER]},
        },
        "action_groups.yml": meta("actiongroups"),
        "tenants.yml": meta("tenants"),
    }


def _digest(docs: dict[str, dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest()


def hash_password(password: str) -> str:
    """bcrypt, as the plugin's ``tools/hash.sh`` writes it."""
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=12)).decode()


class SecureNode(LocalNode):
    """A :class:`LocalNode` with the security plugin, TLS, users and roles."""

    def __init__(self, settings: LocalNodeSettings, index_prefix: str = "outfit") -> None:
        if not settings.secure:
            raise ProvisionError("SecureNode needs LocalNodeSettings(secure=True)")
        super().__init__(settings)
        self.prefix = index_prefix
        self.bill = replace(
            self.bill, plugins=(*self.bill.plugins, security_plugin(settings.plugin_version))
        )
        self.secrets_dir = self.home / "secrets"
        self.pki = Pki.at(self.home / "certs", self.secrets_dir)
        self.credentials_file = self.secrets_dir / "credentials.json"
        self.config_marker = self.home / "security-config.sha256"

    # ------------------------------------------------------------------ credentials
    def _ensure_credentials(self) -> dict[str, dict[str, str]]:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        if self.credentials_file.is_file():
            stored = json.loads(self.credentials_file.read_text())
            if set(stored) == set(USERS):
                return {str(k): dict(v) for k, v in stored.items()}
        logger.info("generating passwords for %s", ", ".join(USERS))
        creds = {}
        for user in USERS:
            password = secrets.token_urlsafe(24)
            creds[user] = {"password": password, "hash": hash_password(password)}
        write_private(self.credentials_file, json.dumps(creds, indent=2).encode())
        return creds

    def password(self, user: str) -> SecretStr:
        """A user's generated password (after the first :meth:`up`)."""
        try:
            creds = json.loads(self.credentials_file.read_text())
            return SecretStr(creds[user]["password"])
        except (OSError, ValueError, KeyError) as exc:
            raise ProvisionError(
                f"no password for {user!r} under {self.secrets_dir}: run "
                "`python -m engine.cluster up --secure` first",
                user=user,
            ) from exc

    def client_settings(self, user: str = API_USER) -> ClusterSettings:
        """How a client reaches this node as ``user`` (URL, CA, user, password, our prefix)."""
        return ClusterSettings(
            url=self.s.url,
            username=user,
            password=self.password(user),
            ca_certs=self.pki.ca_cert,
            index_prefix=self.prefix,
        )

    def _write_env_files(self) -> None:
        for user in USERS:
            c = self.client_settings(user)
            lines = {
                "OUTFIT_CLUSTER__URL": c.url,
                "OUTFIT_CLUSTER__CA_CERTS": str(c.ca_certs),
                "OUTFIT_CLUSTER__USERNAME": user,
                "OUTFIT_CLUSTER__PASSWORD": c.password.get_secret_value() if c.password else "",
                "OUTFIT_CLUSTER__INDEX_PREFIX": self.prefix,
            }
            body = "".join(f"{k}={v}\n" for k, v in lines.items())
            write_private(self.env_file(user), body.encode())

    def env_file(self, user: str) -> Path:
        """``secrets/<user>.env`` (0600): ``set -a; . that-file; set +a`` to use that user."""
        return self.secrets_dir / f"{user}.env"

    # ------------------------------------------------------------------ run
    def up(self) -> NodeStatus:
        """Like :meth:`LocalNode.up`; a running node initialised with another security
        configuration (e.g. another index prefix) is stopped and started with this one."""
        if self.read_pid() is not None and self.credentials_file.is_file():
            wanted = _digest(self._security_docs(self._ensure_credentials()))
            if self._applied_digest() != wanted:
                logger.info("the running secured node has another configuration: restarting")
                self.down()
        return super().up()

    # ------------------------------------------------------------------ configuration
    def _write_config(self) -> None:
        super()._write_config()
        if not self.pki.exists():
            logger.info("generating a local CA and node/admin certificates")
            self.pki.generate()
        creds = self._ensure_credentials()
        conf_dir = self.install_dir / "config"
        for src, name in (
            (self.pki.ca_cert, "root-ca.pem"),
            (self.pki.node_cert, "node.pem"),
        ):
            shutil.copyfile(src, conf_dir / name)
        write_private(conf_dir / "node-key.pem", self.pki.node_key.read_bytes())
        tls = {
            "plugins.security.ssl.transport.pemcert_filepath": "node.pem",
            "plugins.security.ssl.transport.pemkey_filepath": "node-key.pem",
            "plugins.security.ssl.transport.pemtrustedcas_filepath": "root-ca.pem",
            "plugins.security.ssl.transport.enforce_hostname_verification": False,
            "plugins.security.ssl.http.enabled": True,
            "plugins.security.ssl.http.pemcert_filepath": "node.pem",
            "plugins.security.ssl.http.pemkey_filepath": "node-key.pem",
            "plugins.security.ssl.http.pemtrustedcas_filepath": "root-ca.pem",
            "plugins.security.allow_default_init_securityindex": True,
            "plugins.security.authcz.admin_dn": [ADMIN_DN],
            "plugins.security.nodes_dn": [NODE_DN],
            "plugins.security.restapi.roles_enabled": ["all_access"],
            "plugins.security.system_indices.enabled": True,
            "plugins.security.check_snapshot_restore_write_privileges": True,
        }
        with (conf_dir / "opensearch.yml").open("a") as fh:
            fh.write(yaml.safe_dump(tls, default_flow_style=False))
        docs = self._security_docs(creds)
        sec_dir = conf_dir / "opensearch-security"
        sec_dir.mkdir(exist_ok=True)
        for name, doc in docs.items():
            (sec_dir / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        self._reset_data_if_config_changed(docs)
        self._write_env_files()

    def _security_docs(self, creds: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
        return security_config(self.prefix, {u: c["hash"] for u, c in creds.items()})

    def _applied_digest(self) -> str:
        return self.config_marker.read_text().strip() if self.config_marker.is_file() else ""

    def _reset_data_if_config_changed(self, docs: dict[str, dict[str, Any]]) -> None:
        digest = _digest(docs)
        if self._applied_digest() != digest and self.data_dir.exists():
            logger.info("security configuration changed: resetting %s", self.data_dir)
            shutil.rmtree(self.data_dir)
        self.config_marker.write_text(digest)

    # ------------------------------------------------------------------ health checks
    def _get_json(self, path: str) -> dict:  # type: ignore[type-arg]
        """GET over TLS (our CA) as the admin user."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        token = base64.b64encode(
            f"{ADMIN_USER}:{self.password(ADMIN_USER).get_secret_value()}".encode()
        ).decode()
        req = urllib.request.Request(
            f"{self.s.url}{path}", headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:  # noqa: S310 - loopback
            data = json.loads(resp.read().decode())
        return data  # type: ignore[no-any-return]
