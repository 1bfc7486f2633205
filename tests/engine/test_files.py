"""engine.files: atomic replacement keeps readers whole and files readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import torch

from engine.files import atomic_write_bytes
from engine.models.checkpoints import save_checkpoint


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a" / "x.bin", b"1")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a" / "x.bin") == 0o644
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"1"
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.endswith(".tmp")]


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o640


def test_save_checkpoint_round_trips(tmp_path: Path) -> None:
    path = save_checkpoint({"format": "x/1", "weights": {"w": torch.ones(2)}}, tmp_path / "m.pt")
    state = torch.load(path, weights_only=True)
    assert state["format"] == "x/1" and torch.equal(state["weights"]["w"], torch.ones(2))
