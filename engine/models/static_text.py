"""A distilled static-token text encoder for catalog documents (the ingest side).

MiniLM costs ~46 ms of CPU per catalog text (~59 word pieces) on one core: on a 2-core machine
it is the largest single cost of ingest. Catalog documents are encoded once and read by the
joint text tower; queries keep the full MiniLM. This module replaces MiniLM *for documents* by
a static-token model distilled from it (the Model2Vec idea, then fitted to catalog text):

1. **Base table** (derived, never shipped): every word piece of MiniLM's vocabulary run alone
   through MiniLM (``[CLS] piece [SEP]``, mean-pooled exactly as the teacher pools). Any word a
   retailer uses gets a sensible vector, not only words seen in our catalog. It is computed once
   from the installed MiniLM (~35 s) and cached under ``.cache/static_text/``.
2. **Trained parts** (shipped, ``engine/models/weights/text_static.pt``): a weight per word piece
   (pooling is a weighted mean), corrections for the rows of the pieces seen in training, and a
   residual MLP on the pooled vector. Trained with ``python -m engine.train static-text`` to
   match MiniLM's normalised sentence vectors (cosine loss) on all catalog text variants.

``encode`` is a drop-in for :meth:`engine.models.encoders.TextEncoder.encode` (L2-normalised
384-d vectors in MiniLM's space) at well under 1 ms per text. The checkpoint records a digest
of the MiniLM weights it was distilled from; a different MiniLM is refused.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import ModelUnavailable
from engine.models.checkpoints import atomic_write_bytes, module_digest, read_checkpoint
from engine.models.encoders import TEXT_FEATURE_DIM
from engine.models.versions import STATIC_TEXT_CHECKPOINT, weights_version
from engine.models.versions import document_model_version as document_model_version
from engine.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

# the weights file and the model versions live in engine.models.versions (ingest and the joint
# model's users read them without this module); the names stay importable from here
DEFAULT_WEIGHTS = STATIC_TEXT_CHECKPOINT.default
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "static_text"
STATIC_TEXT_FORMAT = STATIC_TEXT_CHECKPOINT.format


def teacher_digest(teacher: Any) -> str:
    """sha1 (16 hex) of the MiniLM weights: which teacher a table / checkpoint belongs to."""
    return module_digest(teacher.model, "minilm-static:1")


def torch_teacher(text_encoder: Any) -> Any:
    """The PyTorch :class:`TextEncoder` behind a possibly ONNX-accelerated one."""
    return getattr(text_encoder, "encoder", text_encoder)


@torch.inference_mode()
def derive_base_table(teacher: Any, batch_size: int = 2048) -> np.ndarray:
    """(vocab, 384) float32: each word piece alone through MiniLM, mean-pooled over
    ``[CLS] piece [SEP]`` (the teacher's own pooling; not normalised)."""
    tok = teacher.tokenizer
    vocab = int(tok.vocab_size)
    table = np.zeros((vocab, TEXT_FEATURE_DIM), dtype=np.float32)
    device = teacher.device
    for start in range(0, vocab, batch_size):
        ids = torch.arange(start, min(vocab, start + batch_size))
        n = len(ids)
        inp = torch.stack(
            [torch.full((n,), tok.cls_token_id), ids, torch.full((n,), tok.sep_token_id)], dim=1
        ).to(device)
        hidden = teacher.model(
            input_ids=inp,
            attention_mask=torch.ones_like(inp),
            token_type_ids=torch.zeros_like(inp),
        ).last_hidden_state
        table[start : start + n] = hidden.mean(dim=1).float().cpu().numpy()
    return table


def base_table(teacher: Any, cache_dir: Path = DEFAULT_CACHE_DIR) -> tuple[np.ndarray, str]:
    """(base table, teacher digest); the table is read from / written to ``cache_dir``."""
    digest = teacher_digest(teacher)
    path = Path(cache_dir) / f"base_{digest}.npy"
    if path.is_file():
        try:
            table = np.load(path, allow_pickle=False)
            if table.shape == (int(teacher.tokenizer.vocab_size), TEXT_FEATURE_DIM):
                return table.astype(np.float32, copy=False), digest
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable static text table %s: %s", path, exc)
    logger.info("deriving the static text table from MiniLM (once; cached in %s)", path.parent)
    table = derive_base_table(teacher)
    buf = io.BytesIO()
    np.save(buf, table)
    atomic_write_bytes(path, buf.getvalue())
    return table, digest


class StaticTextNet(nn.Module):
    """Weighted mean of (base + correction) piece vectors -> residual MLP -> L2 normalise."""

    base: torch.Tensor  # registered buffer (derived from MiniLM, never shipped)

    def __init__(self, base: np.ndarray, hidden: int = 768) -> None:
        super().__init__()
        vocab, dim = base.shape
        self.register_buffer("base", torch.as_tensor(base, dtype=torch.float32))
        self.delta = nn.Parameter(torch.zeros(vocab, dim))
        self.log_weight = nn.Parameter(torch.zeros(vocab))
        first = nn.Linear(dim, hidden)  # created in this order: seeded runs reproduce
        out = nn.Linear(hidden, dim)
        nn.init.zeros_(out.weight)  # starts as the identity: pooled vector unchanged
        nn.init.zeros_(out.bias)
        self.mlp = nn.Sequential(first, nn.GELU(), out)

    def pooled(
        self, ids: torch.Tensor, offsets: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        weights = torch.exp(self.log_weight[ids])
        if table is None:
            table = self.base + self.delta
        num = nn.functional.embedding_bag(
            ids, table, offsets, mode="sum", per_sample_weights=weights
        )
        lengths = torch.diff(offsets, append=torch.tensor([len(ids)], dtype=offsets.dtype))
        owner = torch.repeat_interleave(torch.arange(len(offsets)), lengths)
        den = torch.zeros(len(offsets), dtype=weights.dtype).index_add_(0, owner, weights)
        return num / den.clamp(min=1e-9)[:, None]

    def forward(
        self, ids: torch.Tensor, offsets: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        p = self.pooled(ids, offsets, table)
        return nn.functional.normalize(p + self.mlp(p), dim=-1)

    def shipped_state(self) -> dict[str, torch.Tensor]:
        """Compact state without the derived base table: only the corrected rows, as int8 with
        a scale per row; the rest in half precision."""
        delta = self.delta.detach()
        rows = torch.nonzero(delta.abs().amax(dim=1) > 0).flatten()
        scale = (delta[rows].abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
        state = {
            "delta_rows": rows.to(torch.int32),
            "delta_q": torch.round(delta[rows] / scale).to(torch.int8),
            "delta_scale": scale.float(),
            "log_weight": self.log_weight.detach().half(),
        }
        state.update({f"mlp.{k}": v.detach().half() for k, v in self.mlp.state_dict().items()})
        return state

    def load_shipped(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.delta.zero_()
            rows = state["delta_rows"].long()
            self.delta[rows] = state["delta_q"].float() * state["delta_scale"].float()
            self.log_weight.copy_(state["log_weight"].float())
        self.mlp.load_state_dict(
            {k[4:]: v.float() for k, v in state.items() if k.startswith("mlp.")}, strict=True
        )


def tokenize(
    tokenizer: Any, texts: Sequence[str], max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """(flat piece ids, offsets) for :meth:`StaticTextNet.forward`; an empty text keeps its
    ``[CLS] [SEP]`` pieces so every text has at least one piece."""
    enc = tokenizer(
        [str(t) for t in texts], truncation=True, max_length=max_length, add_special_tokens=True
    )["input_ids"]
    lengths = np.fromiter((len(ids) for ids in enc), dtype=np.int64, count=len(enc))
    flat = np.fromiter((i for ids in enc for i in ids), dtype=np.int64, count=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return flat, offsets


class StaticTextEncoder:
    """Drop-in for ``TextEncoder.encode`` on catalog documents (see the module docstring)."""

    feature_dim = TEXT_FEATURE_DIM

    def __init__(
        self, tokenizer: Any, net: StaticTextNet, version: str, *, max_length: int = 128
    ) -> None:
        self.tokenizer = tokenizer
        self.net = net.eval()
        self.version = version
        self.max_length = max_length
        self.batch_size = 4096
        with torch.no_grad():
            self._table = net.base + net.delta  # frozen at inference: add once

    @classmethod
    def load(
        cls,
        teacher: Any,
        path: Path | None = None,
        *,
        cache_dir: Path = DEFAULT_CACHE_DIR,
    ) -> StaticTextEncoder:
        """Weights from ``path`` (default: the shipped ones) over the table derived from
        ``teacher`` (a MiniLM :class:`TextEncoder`, possibly ONNX-accelerated)."""
        ckpt, state = read_checkpoint(path, STATIC_TEXT_CHECKPOINT)
        teacher = torch_teacher(teacher)
        table, digest = base_table(teacher, cache_dir)
        if state.get("teacher_digest") != digest:
            raise ModelUnavailable(
                f"static text encoder {ckpt} was distilled from another MiniLM "
                f"({state.get('teacher_digest')} != {digest}); retrain it with "
                "`python -m engine.train static-text`",
                path=str(ckpt),
            )
        net = StaticTextNet(table, hidden=int(state.get("hidden", 768)))
        try:
            net.load_shipped(state["weights"])
        except (KeyError, RuntimeError, IndexError) as exc:
            raise ModelUnavailable(
                STATIC_TEXT_CHECKPOINT.mismatch.format(ckpt=ckpt, exc=exc, format="")
            ) from exc
        return cls(teacher.tokenizer, net, weights_version(ckpt))

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 384) float32, L2-normalised."""
        if len(texts) == 0:
            return np.zeros((0, TEXT_FEATURE_DIM), dtype=np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            flat, offsets = tokenize(
                self.tokenizer, texts[start : start + self.batch_size], self.max_length
            )
            ids, offs = torch.from_numpy(flat), torch.from_numpy(offsets)
            out.append(self.net(ids, offs, self._table).numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


def document_text_encoder(
    choice: str, text_encoder: Any, weights: Path | None = None
) -> StaticTextEncoder | None:
    """The documents' text backbone ``models.document_text_encoder`` names: the static encoder
    for ``"static"``, None for ``"minilm"`` (callers then use MiniLM itself)."""
    if choice == "static":
        return StaticTextEncoder.load(text_encoder, weights)
    return None
