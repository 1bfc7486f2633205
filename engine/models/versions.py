"""The shipped models' checkpoint kinds and the model version ingest stamps on documents.

The joint model (:mod:`engine.models.joint`), the static document text encoder
(:mod:`engine.models.static_text`), ingest and training all name these files and versions;
reading a version loads neither model, so this module imports no model module (which keeps the
models free of import cycles).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ModelUnavailable
from engine.models.checkpoints import (
    CheckpointKind,
    checkpoint_version,
    file_sha1,
    resolve_checkpoint,
)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

JOINT_CHECKPOINT = CheckpointKind(
    format="outfit-joint/1",
    default=WEIGHTS_DIR / "joint.pt",
    filename="joint.pt",
    missing="joint model checkpoint not found at {ckpt}; train one with "
    "`python -m engine.train joint`",
    unreadable="cannot read joint checkpoint {ckpt}: {exc}",
    wrong_format="{ckpt} is not a joint model checkpoint ({format})",
    mismatch="checkpoint {ckpt} does not match its config: {exc}",
)

STATIC_TEXT_CHECKPOINT = CheckpointKind(
    format="outfit-static-text/1",
    default=WEIGHTS_DIR / "text_static.pt",
    filename="text_static.pt",
    missing="static text encoder weights not found at {ckpt}; train them with "
    "`python -m engine.train static-text` or set models.document_text_encoder=minilm",
    unreadable="cannot read static text encoder weights {ckpt}: {exc}",
    wrong_format="{ckpt} is not a static text encoder checkpoint ({format})",
    mismatch="static text encoder weights {ckpt} do not fit: {exc}",
)


def weights_version(path: Path | None = None) -> str:
    """``static-<sha1 of the weights file, 12 hex>``: part of the ingest model version."""
    ckpt = resolve_checkpoint(path, STATIC_TEXT_CHECKPOINT)
    if not ckpt.is_file():
        raise ModelUnavailable(STATIC_TEXT_CHECKPOINT.missing.format(ckpt=ckpt), path=str(ckpt))
    return f"static-{file_sha1(ckpt)[:12]}"


def document_model_version(
    joint_checkpoint: Path | None, document_text_encoder: str, static_weights: Path | None = None
) -> str:
    """The ``model_version`` ingest stamps on product documents (and folds into content hashes;
    the compatibility model records it): the joint checkpoint's version, plus the static
    document text encoder's when documents use it."""
    version = checkpoint_version(resolve_checkpoint(joint_checkpoint, JOINT_CHECKPOINT))
    if document_text_encoder == "static":
        version += "+" + weights_version(static_weights)
    return version
