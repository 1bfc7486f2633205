"""Checkpoints (atomic writes, catalog identity) and the resumable failure report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine import files
from engine.errors import InvalidInput
from ingest.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from ingest.report import Failure, FailureWriter, IngestReport


def _catalog(tmp_path: Path, text: str = '{"id": "1", "title": "x"}\n') -> Path:
    path = tmp_path / "c.jsonl"
    path.write_text(text)
    return path


def test_roundtrip_and_identity(tmp_path: Path) -> None:
    cat = _catalog(tmp_path)
    cp = Checkpoint.for_catalog("idx", cat)
    cp.rows_done = 7
    cp.counts = {"read": 7}
    path = checkpoint_path("idx", tmp_path / "state")
    save_checkpoint(cp, path)
    loaded = load_checkpoint(path)
    assert loaded is not None
    assert loaded.rows_done == 7 and loaded.counts == {"read": 7}
    assert loaded.matches(Checkpoint.for_catalog("idx", cat))
    assert not loaded.matches(Checkpoint.for_catalog("other", cat))
    cat.write_text('{"id": "1", "title": "y"}\n')  # same size, other bytes
    assert not loaded.matches(Checkpoint.for_catalog("idx", cat))
    assert load_checkpoint(tmp_path / "missing.json") is None


def test_corrupt_checkpoint_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("{half")
    with pytest.raises(InvalidInput):
        load_checkpoint(path)
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InvalidInput):
        load_checkpoint(path)


def test_failed_write_leaves_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = _catalog(tmp_path)
    path = tmp_path / "state" / "idx.checkpoint.json"
    cp = Checkpoint.for_catalog("idx", cat)
    cp.rows_done = 3
    save_checkpoint(cp, path)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    cp.rows_done = 99
    monkeypatch.setattr(files.os, "replace", boom)  # where the atomic write lives
    with pytest.raises(OSError):
        save_checkpoint(cp, path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # old checkpoint untouched
    assert os.listdir(path.parent) == [path.name]  # temp file cleaned up
    loaded = load_checkpoint(path)
    assert loaded is not None and loaded.rows_done == 3


def test_failure_writer_resume_truncates_unacknowledged(tmp_path: Path) -> None:
    path = tmp_path / "failures.jsonl"
    w = FailureWriter(path)
    w.write([Failure("a", 1, "validate", "bad", "invalid_field")])
    acked = w.offset
    w.write([Failure("b", 2, "image", "corrupt", "image_invalid")])  # not checkpointed
    w.close()
    assert len(path.read_text().splitlines()) == 2
    w2 = FailureWriter(path, resume_offset=acked)
    w2.write([Failure("b", 2, "image", "corrupt", "image_invalid")])
    w2.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["item_id"] for x in lines] == ["a", "b"]
    assert set(lines[0]) == {"item_id", "line", "stage", "reason", "code"}
    # a fresh (non-resumed) run starts a new report
    FailureWriter(path).close()
    assert path.read_text() == ""


def test_report_reconciles_and_summarises() -> None:
    r = IngestReport(command="products", index="i")
    r.read, r.indexed, r.skipped_unchanged = 10, 6, 2
    r.add_failures(
        [
            Failure("1", 1, "validate", "x", "missing_title"),
            Failure("2", 2, "image", "y", "image_invalid"),
        ]
    )
    r.add_time("encode_image", 2.0, 6)
    r.wall_seconds = 5.0
    r.completed = True
    assert r.reconciles and r.failed == 2
    assert r.failures_by_stage == {"validate": 1, "image": 1}
    assert r.stage_rates()["encode_image"] == 3.0
    assert r.items_per_second == 2.0
    text = r.summary()
    assert "read 10 = indexed 6 + failed 2 + skipped_unchanged 2" in text
    assert "image_invalid=1" in text
    assert r.to_json()["reconciles"] is True
    r.read = 11
    assert not r.reconciles
