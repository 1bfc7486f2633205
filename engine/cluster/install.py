"""Download and assemble the local node's OpenSearch from Maven Central (:class:`NodeInstaller`).

Everything downloads through ``mvn`` so that the machine's configured repository (and its
mirrors and credentials) is used; no host names appear here. Artifacts are cached under
``<home>/cache`` with a manifest of their sha256; the installation records what it holds in
``opensearch-<v>/installed.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

from engine.cluster.artifacts import SHA256, Artifact, ModuleSpec, NodeBill, bill_for
from engine.errors import ProvisionError
from engine.settings import LocalNodeSettings

logger = logging.getLogger(__name__)

_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"


class NodeInstaller:
    """The node's files: download (cached, verified) and install; its process environment."""

    def __init__(self, settings: LocalNodeSettings) -> None:
        self.s = settings
        self.bill: NodeBill = bill_for(settings.version, settings.plugin_version)
        self.home = settings.home.resolve()
        self.cache = self.home / "cache"
        self.install_dir = self.home / f"opensearch-{settings.version}"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.pid_file = self.home / "node.pid"

    # ------------------------------------------------------------------ download
    def _mvn(self) -> str:
        mvn = shutil.which(self.s.mvn)
        if mvn is None:
            raise ProvisionError(
                f"'{self.s.mvn}' (Apache Maven) not found on PATH; install it (apt-get install maven)"
                " or set OUTFIT_CLUSTER__URL to use an existing cluster",
            )
        return mvn

    def java_home(self) -> Path:
        if self.s.java_home is not None:
            jh = self.s.java_home
        else:
            java = shutil.which("java")
            if java is None:
                raise ProvisionError(
                    "no Java found: install a JDK 17+ or set OUTFIT_LOCAL_NODE__JAVA_HOME",
                )
            jh = Path(java).resolve().parent.parent
        if not (jh / "bin" / "java").exists():
            raise ProvisionError(
                f"{jh}/bin/java does not exist; check OUTFIT_LOCAL_NODE__JAVA_HOME"
            )
        return jh

    def fetch_all(self, artifacts: list[Artifact]) -> dict[Artifact, Path]:
        """Download missing artifacts in one ``mvn`` run into the cache; verify pinned sha256.

        A generated POM lists them as non-transitive dependencies, so Maven's configured
        repositories, mirrors and credentials apply. Cached files are re-verified by sha256.
        """
        self.cache.mkdir(parents=True, exist_ok=True)
        manifest = self._manifest()
        missing = [
            a
            for a in artifacts
            if not (self.cache / a.filename).exists()
            or manifest.get(a.filename) != _sha256(self.cache / a.filename)
        ]
        if missing:
            logger.info("downloading %d artifact(s) with mvn", len(missing))
            pom = self.cache / "download-pom.xml"
            pom.write_text(_download_pom(missing))
            cmd = [
                self._mvn(),
                "-B",
                "-q",
                "-f",
                str(pom),
                f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={self.cache}",
                "-DexcludeTransitive=true",
                "-Dmdep.overWriteReleases=true",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            absent = [a.coordinate for a in missing if not (self.cache / a.filename).exists()]
            if proc.returncode != 0 or absent:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise ProvisionError(
                    f"download failed (mvn exit {proc.returncode}); missing: {', '.join(absent)}",
                    output=tail,
                )
            for a in missing:
                target = self.cache / a.filename
                digest = _sha256(target)
                pinned = SHA256.get(a.filename)
                if pinned is not None and digest != pinned:
                    target.unlink()
                    raise ProvisionError(
                        f"{a.filename}: sha256 {digest} does not match the pinned {pinned}"
                    )
                _verify_zip(target)
                manifest[a.filename] = digest
            self._write_manifest(manifest)
        return {a: self.cache / a.filename for a in artifacts}

    def _manifest(self) -> dict[str, str]:
        path = self.cache / "manifest.json"
        if path.exists():
            try:
                data = json.loads(path.read_text())
                return {str(k): str(v) for k, v in data.items()}
            except (json.JSONDecodeError, AttributeError):
                return {}
        return {}

    def _write_manifest(self, manifest: dict[str, str]) -> None:
        (self.cache / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))

    # ------------------------------------------------------------------ install
    def _install_marker(self) -> dict[str, object]:
        return {
            "version": self.bill.version,
            "modules": sorted(m.name for m in self.bill.modules),
            "plugins": sorted(p.filename for p in self.bill.plugins),
        }

    def is_installed(self) -> bool:
        marker = self.install_dir / "installed.json"
        if not marker.exists():
            return False
        try:
            return bool(json.loads(marker.read_text()) == self._install_marker())
        except json.JSONDecodeError:
            return False

    def install(self) -> None:
        """Download (cached) and assemble the node; a no-op when already installed."""
        if self.is_installed():
            logger.info(
                "OpenSearch %s already installed at %s", self.bill.version, self.install_dir
            )
            return
        t0 = time.monotonic()
        files = self.fetch_all(self.bill.all_artifacts())
        if self.install_dir.exists():
            shutil.rmtree(self.install_dir)
        staging = self.home / "staging"
        if staging.exists():
            shutil.rmtree(staging)
        with zipfile.ZipFile(files[self.bill.distribution]) as zf:
            zf.extractall(staging)
        extracted = staging / f"opensearch-{self.bill.version}"
        if not extracted.is_dir():
            raise ProvisionError(
                f"unexpected distribution layout in {files[self.bill.distribution]}"
            )
        extracted.rename(self.install_dir)
        shutil.rmtree(staging)
        for p in (self.install_dir / "bin").iterdir():
            p.chmod(0o755)
        for module in self.bill.modules:
            self._assemble_module(module, files)
        for plugin in self.bill.plugins:
            self._install_plugin(files[plugin])
        (self.install_dir / "installed.json").write_text(
            json.dumps(self._install_marker(), indent=2)
        )
        logger.info("installed OpenSearch %s in %.1fs", self.bill.version, time.monotonic() - t0)

    def _assemble_module(self, module: ModuleSpec, files: dict[Artifact, Path]) -> None:
        mdir = self.install_dir / "modules" / module.name
        mdir.mkdir(parents=True, exist_ok=True)
        for jar in module.jars:
            shutil.copy2(files[jar], mdir / jar.filename)
        descriptor = {
            "description": module.description,
            "version": self.bill.version,
            "name": module.name,
            "classname": module.classname,
            "java.version": "11",
            "opensearch.version": self.bill.version,
            "custom.foldername": "",
            "extended.plugins": ",".join(module.extended_plugins),
            "has.native.controller": "false",
        }
        (mdir / "plugin-descriptor.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in descriptor.items())
        )
        if module.security_policy:
            (mdir / "plugin-security.policy").write_text(module.security_policy)

    def _install_plugin(self, zip_path: Path) -> None:
        cmd = [
            str(self.install_dir / "bin" / "opensearch-plugin"),
            "install",
            "--batch",
            zip_path.resolve().as_uri(),
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=self._env(), check=False, timeout=300
        )
        if proc.returncode != 0:
            raise ProvisionError(
                f"installing plugin {zip_path.name} failed",
                output="\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:]),
            )

    # ------------------------------------------------------------------ environment
    def _env(self) -> dict[str, str]:
        # A subprocess environment built from settings, not from the caller's environment.
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "OPENSEARCH_JAVA_HOME": str(self.java_home()),
            "OPENSEARCH_PATH_CONF": str(self.install_dir / "config"),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{self.s.heap} -Xmx{self.s.heap}",
            "LANG": "C.UTF-8",
        }


# ---------------------------------------------------------------------- helpers
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_pom(artifacts: list[Artifact]) -> str:
    deps = "".join(
        "<dependency>"
        f"<groupId>{a.group}</groupId><artifactId>{a.artifact}</artifactId>"
        f"<version>{a.version}</version><type>{a.packaging}</type>"
        "<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>"
        "</exclusions></dependency>"
        for a in artifacts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local.outfit</groupId><artifactId>opensearch-node-download</artifactId>"
        "<version>1</version><packaging>pom</packaging>"
        f"<dependencies>{deps}</dependencies></project>"
    )


def _verify_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        path.unlink(missing_ok=True)
        raise ProvisionError(f"downloaded {path.name} is not a valid archive: {exc}") from exc
    if bad is not None:
        path.unlink(missing_ok=True)
        raise ProvisionError(f"downloaded {path.name} is corrupt (bad member {bad})")
