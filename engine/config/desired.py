"""Pure: read plugin_config/ and render what should exist in a cluster (no I/O to the cluster)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError
from engine.settings import PROJECT_ROOT

CONFIG_DIR = PROJECT_ROOT / "plugin_config"

Kind = Literal["index_template", "search_pipeline", "stored_script"]


@dataclass(frozen=True)
class ConfigObject:
    kind: Kind
    name: str
    body: dict[str, Any]

    @property
    def digest(self) -> str:
        """Stable content hash, recorded in the cluster object to detect drift."""
        canon = json.dumps(self.body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _render(text: str, prefix: str, replicas: int) -> str:
    return text.replace("@PREFIX@", prefix).replace('"@REPLICAS@"', str(replicas))


def _load(path: Path, prefix: str, replicas: int) -> dict[str, Any]:
    try:
        data = json.loads(_render(path.read_text(), prefix, replicas))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def replicas_for(data_nodes: int) -> int:
    """Replicas of our indices on a cluster of ``data_nodes`` data nodes: one copy on another
    node when there is another node (a node may then die without losing data or answers), none
    on a single node (a replica could never be assigned there: the index would stay yellow)."""
    return 1 if data_nodes > 1 else 0


def template_id(prefix: str, name: str) -> str:
    """Stored search template id, e.g. ``outfit-text``."""
    return f"{prefix}-{name}"


def desired_objects(
    prefix: str, replicas: int = 0, config_dir: Path = CONFIG_DIR
) -> list[ConfigObject]:
    """Everything our product installs, in apply order (pipelines before templates)."""
    out: list[ConfigObject] = []
    for path in sorted((config_dir / "pipelines").glob("*.json")):
        out.append(
            ConfigObject("search_pipeline", f"{prefix}-{path.stem}", _load(path, prefix, replicas))
        )
    for path in sorted((config_dir / "index_templates").glob("*.json")):
        out.append(
            ConfigObject("index_template", f"{prefix}-{path.stem}", _load(path, prefix, replicas))
        )
    for path in sorted((config_dir / "search_templates").glob("*.json")):
        data = _load(path, prefix, replicas)
        script = data.get("script")
        if not isinstance(script, dict) or script.get("lang") != "mustache":
            raise ConfigError(f"{path}: expected {{'script': {{'lang': 'mustache', ...}}}}")
        out.append(
            ConfigObject("stored_script", template_id(prefix, path.stem), {"script": script})
        )
    if not out:
        raise ConfigError(f"no configuration found under {config_dir}")
    return out
