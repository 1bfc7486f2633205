"""Ingest checkpoints: which prefix of the catalog's rows is safely in the index.

The indexing thread acknowledges batches in row order, so progress is one number:
``rows_done`` (rows 0..rows_done-1 were indexed, skipped or recorded as failures). The file also
records the catalog (path, size, sha1) so a resume against a different file is refused, and the
byte length of the failure report at that point, so a resumed run truncates failures written
after the last acknowledged batch (each failure is reported exactly once).

Writes are atomic (:func:`engine.files.atomic_write_bytes`): a temp file in the same folder,
fsync, then ``os.replace``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput
from engine.files import atomic_write_bytes, file_sha1
from engine.settings import PROJECT_ROOT

CHECKPOINT_FORMAT = "outfit-ingest-checkpoint/1"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".cache" / "ingest"


def checkpoint_path(index: str, state_dir: Path | None = None) -> Path:
    return Path(state_dir or DEFAULT_STATE_DIR) / f"{index}.checkpoint.json"


@dataclass
class Checkpoint:
    index: str
    catalog: str
    catalog_sha1: str
    catalog_size: int
    rows_done: int = 0
    completed: bool = False
    failures_path: str | None = None
    failures_offset: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # cumulative over resumed runs
    updated_at: float = 0.0
    format: str = CHECKPOINT_FORMAT

    @classmethod
    def for_catalog(cls, index: str, catalog: Path) -> Checkpoint:
        catalog = Path(catalog)
        return cls(
            index=index,
            catalog=str(catalog.resolve()),
            catalog_sha1=file_sha1(catalog),
            catalog_size=catalog.stat().st_size,
        )

    def matches(self, other: Checkpoint) -> bool:
        """Same index and byte-identical catalog."""
        return (
            self.index == other.index
            and self.catalog_sha1 == other.catalog_sha1
            and self.catalog_size == other.catalog_size
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        if data.get("format") != CHECKPOINT_FORMAT:
            raise InvalidInput("not an ingest checkpoint", format=data.get("format"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def save_checkpoint(cp: Checkpoint, path: Path) -> None:
    """Atomically replace ``path`` with ``cp`` (readers see the old or the new file, never half)."""
    cp.updated_at = time.time()
    text = json.dumps(cp.to_json(), indent=1, sort_keys=True)
    atomic_write_bytes(path, text.encode("utf-8"))


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``; None when there is none. A corrupt file is an error."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"unreadable checkpoint {path}: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"unreadable checkpoint {path}", path=str(path))
    return Checkpoint.from_json(data)
