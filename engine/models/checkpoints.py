"""Reading our torch checkpoints: one loader for every model saved as a ``format``-tagged dict.

A checkpoint is ``torch.save`` of a dict with at least ``format`` (e.g. ``outfit-joint/1``) and
``weights`` (a state dict, possibly half precision). Whatever makes it unusable -> missing,
unreadable, another format, weights that do not fit the network -> :class:`ModelUnavailable`.

Also the identities of model files and of artefacts derived from weights: checkpoint versions
(what ingest stamps on documents), module digests (ONNX exports, the static text table) and the
atomic write those derived files use (:mod:`engine.files`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import ModelUnavailable
from engine.files import atomic_write_bytes, file_sha1

__all__ = [
    "CheckpointKind",
    "atomic_write_bytes",
    "checkpoint_version",
    "file_sha1",
    "load_weights",
    "module_digest",
    "read_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]


@dataclass(frozen=True)
class CheckpointKind:
    """A kind of checkpoint and the wording of its errors.

    Messages are ``str.format`` templates over ``ckpt`` (the resolved path), ``format`` and, for
    ``unreadable`` and ``mismatch``, ``exc`` (the underlying error).
    """

    format: str
    default: Path  # used when no path is given
    filename: str  # looked up inside a directory path
    missing: str
    unreadable: str
    wrong_format: str
    mismatch: str


def resolve_checkpoint(path: Path | str | None, kind: CheckpointKind) -> Path:
    """The checkpoint file ``path`` names: ``kind.default`` for None, ``kind.filename`` inside a
    directory, else the path itself (not checked for existence)."""
    ckpt = Path(path) if path is not None else kind.default
    return ckpt / kind.filename if ckpt.is_dir() else ckpt


def module_digest(module: nn.Module, salt: str) -> str:
    """sha1 (16 hex) of ``salt`` and a module's state (names and tensor bytes, sorted): names the
    weights a derived artefact (an ONNX export, a table) was made from."""
    h = hashlib.sha1(salt.encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def checkpoint_version(path: Path) -> str:
    """``<file stem>-<sha1 of the checkpoint bytes, 12 hex>``: changes whenever weights change."""
    return f"{Path(path).stem}-{file_sha1(path)[:12]}"


def read_checkpoint(path: Path | str | None, kind: CheckpointKind) -> tuple[Path, dict[str, Any]]:
    """(resolved path, state dict) of a checkpoint file, or a directory holding one."""
    ckpt = resolve_checkpoint(path, kind)
    if not ckpt.is_file():
        raise ModelUnavailable(kind.missing.format(ckpt=ckpt, format=kind.format), path=str(ckpt))
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an unusable checkpoint
        raise ModelUnavailable(
            kind.unreadable.format(ckpt=ckpt, format=kind.format, exc=exc)
        ) from exc
    if not isinstance(state, dict) or state.get("format") != kind.format:
        raise ModelUnavailable(
            kind.wrong_format.format(ckpt=ckpt, format=kind.format), path=str(ckpt)
        )
    return ckpt, state


def load_weights(net: nn.Module, weights: dict[str, Any], ckpt: Path, kind: CheckpointKind) -> None:
    """Load a checkpoint's (possibly half-precision) weights into ``net`` as float32, strictly."""
    try:
        net.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelUnavailable(
            kind.mismatch.format(ckpt=ckpt, format=kind.format, exc=exc)
        ) from exc


def save_checkpoint(state: dict[str, Any], path: Path | str) -> Path:
    """Write a checkpoint dict (``torch.save``) to ``path`` atomically: a reader, or a node
    ingesting with the bundle, sees the previous file or the new one, never half of it."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
