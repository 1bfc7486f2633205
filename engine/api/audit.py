"""Audit lines for admin changes: one structured line per change through the ``outfit.audit``
logger (route it to its own file or sink with the logging configuration).

Who made the change is a key id, never the key: ``key-`` plus the first 8 hex digits of the
SHA-256 of the key. The line is JSON (message text and ``record.audit``), so a comment with
newlines cannot forge another line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

audit_logger = logging.getLogger("outfit.audit")


def key_id(key: str) -> str:
    """A stable, non-reversible name for an API key (safe to log and to store)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def audit(event: str, *, actor: str, **fields: Any) -> None:
    """Log one audit line: ``{"event", "actor", ...fields}`` as JSON."""
    record = {"event": event, "actor": actor, **fields}
    audit_logger.info(
        "%s", json.dumps(record, sort_keys=True, default=str), extra={"audit": record}
    )
