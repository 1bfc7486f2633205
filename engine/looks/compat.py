"""Type-aware compatibility model over joint item embeddings.

Following type-aware embedding work (Vasileva et al., ECCV 2018), items live in a general
space and every *pair of slots* {a, b} has its own subspace: compatibility of an item x of
slot a with an item y of slot b is the cosine of their projections into the {a, b} subspace::

    g(x)      = MLP(x)                       general embedding (from the 256-d joint vector)
    s(x, y)   = cos(P_ab g(x), P_ab g(y))    P_ab: a learned projection per unordered pair

so "a top goes with these jeans" and "a top goes with these shoes" are judged in different
subspaces (jeans and shoes need not be similar to each other). A second head proposes
candidates straight from the product index: ``prototype(x, a -> b)`` is a vector in the
*joint* space, the embedding an ideal partner of slot b would have; a k-NN search on the
products' ``joint_embedding`` (filtered by slot) with it yields a candidate pool that the
pair scorer re-ranks.

Both heads are trained with an InfoNCE loss on look pairs with negatives of the partner's slot
(:mod:`engine.train.looks`). The checkpoint (``engine/models/weights/compat.pt``) is small
(float16 weights).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.bundle import DEFAULT_BUNDLE
from engine.errors import InvalidInput
from engine.looks.slots import SLOTS
from engine.models.checkpoints import (
    CheckpointKind,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)

logger = logging.getLogger(__name__)

WEIGHTS_DIR = DEFAULT_BUNDLE  # the shipped bundle (engine/models/weights/)
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "compat.pt"
CHECKPOINT_FORMAT = "outfit-compat/1"
LOOK_RULES = ("pair_soft_min", "item_fit", "item_fit_two_views")  # CompatModel.look_score
COMPAT_CHECKPOINT = CheckpointKind(
    format=CHECKPOINT_FORMAT,
    default=DEFAULT_CHECKPOINT,
    filename="compat.pt",
    missing="compatibility model not found at {ckpt}; train one with "
    "`python -m engine.train.looks`",
    unreadable="cannot read compatibility model {ckpt}: {exc}",
    wrong_format="{ckpt} is not a compatibility model ({format})",
    mismatch="{ckpt} does not match its config: {exc}",
)

SLOT_INDEX: dict[str, int] = {s: i for i, s in enumerate(SLOTS)}
# Unordered slot pairs (including a slot with itself: accessory + accessory).
PAIRS: list[tuple[int, int]] = list(itertools.combinations_with_replacement(range(len(SLOTS)), 2))
PAIR_INDEX: dict[tuple[int, int], int] = {p: i for i, p in enumerate(PAIRS)}


def soft_min(scores: Sequence[float], tau: float = 2.0) -> float:
    """Smooth minimum ``-log(mean(exp(-tau * s))) / tau`` of pairwise scores: a look is about
    as good as its worst pair (chosen on validation looks over the plain mean, which lets one
    clashing item hide behind good pairs)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("soft_min of no scores")
    m = arr.min()
    return float(m - np.log(np.mean(np.exp(-tau * (arr - m)))) / tau)


def pair_index(a: int, b: int) -> int:
    return PAIR_INDEX[(a, b) if a <= b else (b, a)]


def pair_indices(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Vectorised :func:`pair_index` for slot index tensors."""
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    n = len(SLOTS)
    # index of (lo, hi) in combinations_with_replacement order
    return lo * n - (lo * (lo - 1)) // 2 + (hi - lo)


class CompatNet(nn.Module):
    def __init__(
        self,
        dim: int = 256,
        hidden: int = 512,
        space: int = 128,
        pair_dim: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        n_slots = len(SLOTS)
        self.dim = dim
        self.general = nn.Sequential(
            nn.Linear(dim + n_slots, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, space),
        )
        self.pair_proj = nn.Parameter(torch.randn(len(PAIRS), space, pair_dim) / space**0.5)
        self.proto = nn.Sequential(
            nn.Linear(dim + 2 * n_slots, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))

    def _onehot(self, slots: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(slots, len(SLOTS)).to(torch.float32)

    def general_embed(self, x: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        return self.general(torch.cat([x * 8.0, self._onehot(slot)], dim=-1))

    def project(self, g: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Normalised projection of general embeddings (B, ..., space) into the subspace of
        each row's pair (B,): one projection matrix is gathered per row, not per item."""
        z = torch.einsum("b...s,bsp->b...p", g, self.pair_proj[pair])
        return nn.functional.normalize(z, dim=-1)

    def score(
        self, x: torch.Tensor, sx: torch.Tensor, y: torch.Tensor, sy: torch.Tensor
    ) -> torch.Tensor:
        """Cosine compatibility (B,) of x (slot sx) and y (slot sy), row by row."""
        pair = pair_indices(sx, sy)
        return (
            self.project(self.general_embed(x, sx), pair)
            * self.project(self.general_embed(y, sy), pair)
        ).sum(-1)

    def prototype(self, x: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
        """Normalised joint-space vector of an ideal partner of slot sy for x (slot sx)."""
        h = torch.cat([x * 8.0, self._onehot(sx), self._onehot(sy)], dim=-1)
        return nn.functional.normalize(self.proto(h), dim=-1)


class CompatModel:
    """Numpy-in, numpy-out wrapper of :class:`CompatNet` with persistence."""

    def __init__(
        self, net: CompatNet, config: dict[str, Any] | None = None, device: str = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.config = dict(config or {})
        self._references: dict[str, np.ndarray] = {}
        self._ref_embeddings: dict[tuple[str, str], np.ndarray] = {}
        self._projections: dict[int, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.net.dim

    def _vec(self, x: np.ndarray) -> torch.Tensor:
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise InvalidInput(
                f"item vectors must have {self.dim} dimensions, got shape {tuple(arr.shape)}"
            )
        return torch.from_numpy(arr).to(self.device)

    def _slots(self, slots: str | list[str], n: int) -> torch.Tensor:
        names = [slots] * n if isinstance(slots, str) else list(slots)
        try:
            idx = [SLOT_INDEX[s] for s in names]
        except KeyError as exc:
            raise InvalidInput(f"unknown slot {exc.args[0]!r}") from None
        return torch.tensor(idx, dtype=torch.long, device=self.device)

    @torch.inference_mode()
    def pair_embeddings(self, x: np.ndarray, slot: str, other_slot: str) -> np.ndarray:
        """(N, pair_dim) normalised embeddings of items of ``slot`` in the {slot, other_slot}
        subspace: dot products of two such sets are raw (uncalibrated) compatibility scores."""
        t = self._vec(x)
        s = self._slots(slot, t.shape[0])
        self._slots(other_slot, 1)  # validates the name
        pidx = pair_index(SLOT_INDEX[slot], SLOT_INDEX[other_slot])
        z = self.net.general_embed(t, s) @ self.net.pair_proj[pidx]
        return nn.functional.normalize(z, dim=-1).cpu().numpy()

    def score_matrix(
        self, x: np.ndarray, slot: str, candidates: np.ndarray, candidate_slot: str
    ) -> np.ndarray:
        """(len(x), len(candidates)) compatibility of every x with every candidate: the cosine
        in the pair's subspace, standardised by :meth:`pair_calibration`."""
        cand = np.asarray(candidates, dtype=np.float32)
        if cand.ndim == 2 and cand.shape[0] == 0:
            return np.zeros((np.atleast_2d(x).shape[0], 0), dtype=np.float32)
        a = self.pair_embeddings(x, slot, candidate_slot)
        b = self.pair_embeddings(cand, candidate_slot, slot)
        mu, sigma = self.pair_calibration(slot, candidate_slot)
        return ((a @ b.T - mu) / sigma).astype(np.float32)

    def pair_calibration(self, slot: str, other_slot: str) -> tuple[float, float]:
        """(mean, std) of the raw cosine of random item pairs in the {slot, other_slot}
        subspace (identity when the checkpoint has no calibration). Scores are standardised
        with it so that pairs of different slots are on one scale: a look mixing top/bottom
        and top/accessory pairs is scored fairly against another."""
        table = self.config.get("calibration")
        if not table:
            return 0.0, 1.0
        mu, sigma = table[pair_index(SLOT_INDEX[slot], SLOT_INDEX[other_slot])]
        return float(mu), max(float(sigma), 1e-3)

    def score(
        self, x: np.ndarray, slot: str, candidates: np.ndarray, candidate_slot: str
    ) -> np.ndarray:
        """(len(candidates),) compatibility of one item with each candidate."""
        return self.score_matrix(np.asarray(x).reshape(1, -1), slot, candidates, candidate_slot)[0]

    @torch.inference_mode()
    def prototype(self, x: np.ndarray, slot: str, target_slot: str) -> np.ndarray:
        """(dim,) joint-space query vector for k-NN candidates of ``target_slot``."""
        t = self._vec(x)
        n = t.shape[0]
        out = self.net.prototype(t, self._slots(slot, n), self._slots(target_slot, n))
        return out.cpu().numpy()[0] if np.asarray(x).ndim == 1 else out.cpu().numpy()

    @property
    def references(self) -> dict[str, np.ndarray]:
        """Per slot, the reference items' vectors (a fixed sample of the training catalog)
        against which :meth:`item_calibrated_scores` standardises each item's scores; empty
        for checkpoints trained before they were stored."""
        return self._references

    def set_references(self, references: dict[str, np.ndarray]) -> None:
        refs: dict[str, np.ndarray] = {}
        for slot, vecs in references.items():
            if slot not in SLOT_INDEX:
                raise InvalidInput(f"unknown slot {slot!r}")
            arr = np.asarray(vecs, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[1] != self.dim or len(arr) < 2:
                raise InvalidInput(
                    f"references of {slot!r} must be (n >= 2, {self.dim}), got {arr.shape}"
                )
            refs[slot] = arr
        self._references = refs
        self._ref_embeddings: dict[tuple[str, str], np.ndarray] = {}

    def _pair_projection(self, slot: str, other_slot: str) -> np.ndarray:
        """(space, pair_dim) projection of the {slot, other_slot} subspace (cached)."""
        pidx = pair_index(SLOT_INDEX[slot], SLOT_INDEX[other_slot])
        if pidx not in self._projections:
            self._projections[pidx] = self.net.pair_proj[pidx].detach().cpu().float().numpy()
        return self._projections[pidx]

    def _reference_embeddings(self, slot: str, other_slot: str) -> np.ndarray:
        """The reference items of ``slot`` in the {slot, other_slot} subspace (cached)."""
        key = (slot, other_slot)
        if key not in self._ref_embeddings:
            ref = self._references.get(slot)
            if ref is None:
                raise InvalidInput(f"no reference items for slot {slot!r}")
            self._ref_embeddings[key] = self.pair_embeddings(ref, slot, other_slot)
        return self._ref_embeddings[key]

    def item_calibrated_scores(self, vectors: np.ndarray, slots: list[str]) -> np.ndarray:
        """(n, n) matrix ``Z``: ``Z[a, b]`` is how much better item b suits item a than a
        reference item of b's slot does, in standard deviations of a's own scores against those
        references (diagonal 0). It removes each item's own offset: an item that scores high
        with anything (a plain black top) no longer lifts every look it is in."""
        vecs = np.asarray(vectors, dtype=np.float32)
        n = len(slots)
        with torch.inference_mode():
            g = self.net.general_embed(self._vec(vecs), self._slots(list(slots), n)).cpu().numpy()
        z = np.zeros((n, n), dtype=np.float64)
        for a in range(n):
            for b in range(n):
                if a == b:
                    continue
                ref = self._reference_embeddings(slots[b], slots[a])
                proj = self._pair_projection(slots[a], slots[b])
                mine, other = g[a] @ proj, g[b] @ proj
                mine /= max(float(np.linalg.norm(mine)), 1e-12)
                other /= max(float(np.linalg.norm(other)), 1e-12)
                base = ref @ mine
                z[a, b] = (float(other @ mine) - base.mean()) / max(float(base.std()), 1e-6)
        return z

    def item_fits(self, vectors: np.ndarray, slots: list[str]) -> np.ndarray:
        """(n,) how well each item of a look fits the others: its mean of the symmetrised
        :meth:`item_calibrated_scores` over the other items."""
        z = self.item_calibrated_scores(vectors, slots)
        return ((z + z.T) / 2.0).sum(axis=1) / (len(slots) - 1)

    @property
    def look_rule(self) -> str:
        """How :meth:`look_score` aggregates (one of :data:`LOOK_RULES`): the checkpoint's
        choice (made on its validation looks), else item fits on both views when the
        checkpoint stores references and the pairwise soft minimum when it does not."""
        rule = self.config.get("look_rule")
        if rule in LOOK_RULES and (rule == "pair_soft_min" or self._references):
            return str(rule)
        return "item_fit_two_views" if self._references else "pair_soft_min"

    def look_score(
        self,
        vectors: np.ndarray,
        slots: list[str],
        *,
        image_vectors: np.ndarray | None = None,
    ) -> float:
        """Compatibility of a whole look by :attr:`look_rule`:

        * ``pair_soft_min``: :func:`soft_min` of the pairwise scores;
        * ``item_fit``: as good as its worst-fitting item, the lowest of the items'
          :meth:`item_fits` (needs reference items);
        * ``item_fit_two_views``: the same with each fit the mean of the fits on the item
          vectors and on ``image_vectors`` (the items' image embeddings, or their text
          embedding where an item has no photo); ``item_fit`` when they are not given.

        The rule is chosen per catalog on validation looks (``engine.train.looks``): on Mango's
        stylist outfits (611 validation looks, one model) the AUC was 0.771 / 0.793 / 0.803, on
        the development catalog's mined looks the pairwise rule stays ahead."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if len(slots) < 2 or vecs.shape[0] != len(slots):
            raise InvalidInput("a look score needs at least two items with their slots")
        img = None if image_vectors is None else np.asarray(image_vectors, dtype=np.float32)
        if img is not None and img.shape != vecs.shape:
            raise InvalidInput("image_vectors must have the shape of vectors")
        rule = self.look_rule
        if rule != "pair_soft_min" and all(s in self._references for s in slots):
            fits = self.item_fits(vecs, slots)
            if rule == "item_fit_two_views" and img is not None:
                fits = (fits + self.item_fits(img, slots)) / 2.0
            return float(fits.min())
        pairs = [
            float(self.score(vecs[i], slots[i], vecs[j : j + 1], slots[j])[0])
            for i in range(len(slots))
            for j in range(i + 1, len(slots))
        ]
        return soft_min(pairs)

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        weights = {k: v.detach().cpu().to(torch.float16) for k, v in self.net.state_dict().items()}
        weights["logit_scale"] = self.net.logit_scale.detach().cpu().float()
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config,
            "weights": weights,
        }
        if self._references:
            state["references"] = {
                s: torch.from_numpy(v).to(torch.float16) for s, v in self._references.items()
            }
        return state

    def save(self, path: Path) -> Path:
        return save_checkpoint(self.state(), path)

    @classmethod
    def load(cls, path: Path | None = None, device: str = "cpu") -> CompatModel:
        """Load a checkpoint (None = the one shipped in ``engine/models/weights/``)."""
        ckpt, state = read_checkpoint(path, COMPAT_CHECKPOINT)
        config = dict(state.get("config", {}))
        net = build_net(config)
        load_weights(net, state["weights"], ckpt, COMPAT_CHECKPOINT)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model = cls(net, config, device=device)
        refs = state.get("references") or {}
        if refs:
            model.set_references({s: t.float().numpy() for s, t in refs.items()})
        return model


def build_net(config: dict[str, Any]) -> CompatNet:
    return CompatNet(
        dim=int(config.get("dim", 256)),
        hidden=int(config.get("hidden", 512)),
        space=int(config.get("space", 128)),
        pair_dim=int(config.get("pair_dim", 64)),
        dropout=float(config.get("dropout", 0.1)),
    )
