"""Apply plugin_config/ to a cluster idempotently and report what changed."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Literal

from engine.backend import Backend
from engine.config.desired import ConfigObject, replicas_for
from engine.tuning.weights import is_tuned, preserve_tuned_weights

logger = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged", "unsupported"]
_MARK = "outfit_config_digest"


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: Action


def default_replicas(backend: Backend) -> int:
    """Index replicas for this cluster: 1 with more than one data node, else 0."""
    return replicas_for(backend.data_nodes())


def _stamped(obj: ConfigObject) -> dict[str, Any]:
    """The body as sent: the digest is stored in the object so the next run can compare."""
    body = copy.deepcopy(obj.body)
    if obj.kind == "index_template":
        body.setdefault("_meta", {})[_MARK] = obj.digest
    elif obj.kind == "search_pipeline":
        body["description"] = f"{body.get('description', '')} [{_MARK}={obj.digest}]".strip()
    return body


def _current_digest(backend: Backend, obj: ConfigObject) -> tuple[bool, str | None]:
    """(exists, digest found in the cluster)."""
    if obj.kind == "index_template":
        cur = backend.get_index_template(obj.name)
        if cur is None:
            return False, None
        return True, (cur.get("_meta") or {}).get(_MARK)
    if obj.kind == "search_pipeline":
        cur = backend.get_search_pipeline(obj.name)
        if cur is None:
            return False, None
        desc = str(cur.get("description", ""))
        marker = f"[{_MARK}="
        if marker in desc:
            return True, desc.split(marker, 1)[1].split("]", 1)[0]
        return True, None
    cur = backend.get_stored_script(obj.name)
    if cur is None:
        return False, None
    same = cur.get("source") == obj.body["script"]["source"]
    return True, obj.digest if same else None


def apply(
    backend: Backend,
    objects: list[ConfigObject],
    dry_run: bool = False,
    reset_weights: bool = False,
) -> list[Change]:
    """Install what differs. A search pipeline whose hybrid weights were tuned (engine.tuning)
    keeps its weights when updated, unless ``reset_weights`` (which also resets an unchanged
    tuned pipeline to the configured weights)."""
    changes: list[Change] = []
    for obj in objects:
        if not backend.supports(obj.kind):  # e.g. stored templates without lang-mustache
            changes.append(Change(obj.kind, obj.name, "unsupported"))
            continue
        exists, digest = _current_digest(backend, obj)
        tuned = None
        if obj.kind == "search_pipeline" and exists:
            current = backend.get_search_pipeline(obj.name)
            tuned = current if is_tuned(current) else None
        if exists and digest == obj.digest and not (reset_weights and tuned is not None):
            changes.append(Change(obj.kind, obj.name, "unchanged"))
            continue
        action: Action = "updated" if exists else "created"
        changes.append(Change(obj.kind, obj.name, action))
        if dry_run:
            continue
        body = _stamped(obj)
        if tuned is not None and not reset_weights:
            body = preserve_tuned_weights(tuned, body)
            logger.info("%s: keeping the tuned hybrid weights (--reset-weights to reset)", obj.name)
        if obj.kind == "index_template":
            backend.put_index_template(obj.name, body)
        elif obj.kind == "search_pipeline":
            backend.put_search_pipeline(obj.name, body)
        else:
            backend.put_stored_script(obj.name, body)
        logger.info("%s %s %s", action, obj.kind, obj.name)
    return changes
