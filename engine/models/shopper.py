"""Shopper photos: main-object localisation and the two-granularity query embedding.

A phone photo (a T-shirt on a carpet, shoes on a wooden floor) has no uniform background, so the
background-difference crop of :mod:`engine.models.crop` falls back to the whole frame. Here:

1. **Studio check.** When that crop finds a box, the frame's border is uniform (at least
   ``studio_border`` of the border pixels within the crop threshold of the border colour) and
   light (every channel of the border colour at least ``studio_min_level``), the
   photo is a studio shot: today's inputs (one backbone pass on the crop) are both granularities.
2. **Objectness box.** Otherwise the whole photo (padded to a square) goes through the backbone
   once; a learned linear objectness head (:class:`Objectness`, 1,280 weights, trained on
   synthetic shopper photos whose object mask is known, ``python -m engine.train shopper``)
   scores each cell of the last convolution map (7 x 7); the map is upsampled, thresholded
   (``threshold``) and its bounding box, widened by ``margin``, is the object. Its mask also
   restricts the colour descriptor to the object. With a box head
   (:class:`engine.models.shopper_box.BoxHead`, in checkpoints since 2026-12-04) the box is
   regressed from the whole map instead, widened by ``box_margin``, and the colour descriptor
   reads the box's rectangle.
3. **Two granularities.** The object crop gets a second backbone pass; the whole photo's
   features are the spatial mean of the first pass's map (no extra pass). Both go through the
   query image tower (a copy of the joint image tower fine-tuned so synthetic shopper photos land
   next to their studio photos; without one, the joint model's own tower) and are fused as
   ``normalise(w * e_object + (1 - w) * e_whole)``: cosine to a document is then the same
   weighted sum of the two granularities' cosines (up to a per-query constant), so one k-NN
   query scores both. ``w`` (``object_weight``) is chosen on a synthetic validation split.

4. **Type head** (optional): a small MLP over both granularities' query-tower embeddings and
   backbone inputs, trained with cross-entropy on synthetic photos of training items; its
   article-type distribution, mixed with the attribute head's on the fused vector
   (``type_weight``), is what the category step reads for photos that are not studio shots
   (fused with the k-NN vote by ``category_alpha``, restricting at ``category_threshold``).

The checkpoint (``shopper.pt`` in the model bundle) holds the objectness head, the query tower,
the type head and the config; without it photo search uses the joint model alone, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from engine.errors import ModelUnavailable
from engine.models.backbone_tail import BackboneTail
from engine.models.checkpoints import (
    CheckpointKind,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from engine.models.colour import colour_features
from engine.models.crop import CropResult, border_colour, find_main_object, pad_to_square
from engine.models.encoders import IMAGE_FEATURE_DIM
from engine.models.shopper_box import BoxHead, box_from_map, square_box
from engine.models.versions import WEIGHTS_DIR

logger = logging.getLogger(__name__)

SHOPPER_CHECKPOINT = CheckpointKind(
    format="outfit-shopper/1",
    default=WEIGHTS_DIR / "shopper.pt",
    filename="shopper.pt",
    missing="shopper-photo model not found at {ckpt}; train one with "
    "`python -m engine.train shopper`",
    unreadable="cannot read shopper-photo checkpoint {ckpt}: {exc}",
    wrong_format="{ckpt} is not a shopper-photo checkpoint ({format})",
    mismatch="shopper-photo checkpoint {ckpt} does not fit: {exc}",
)

DEFAULT_CONFIG: dict[str, float] = {
    "threshold": 0.5,
    "margin": 0.06,
    "object_weight": 0.5,
    "studio_border": 0.8,
    # a studio shot's background is also light: every channel of the border colour at least
    # this. Catalog packshots (400 validation photos): >= 247; synthetic shopper photos on a
    # flat, noisy colour that passed the uniformity check: <= 190 (50 of 400), and those took
    # the studio path with category top-1 0.41 (0.82 through the query tower)
    "studio_min_level": 200.0,
    "crop_threshold": 24.0,
    "studio_query_tower": 0.0,
    # no cell over ``threshold``: the box of the cells over ``fallback_ratio`` x the map's
    # maximum instead of the whole frame (0: the whole frame)
    "fallback_ratio": 0.0,
    # colour in the photo-search re-rank for photos that are not studio shots: off. On the
    # synthetic validation photos (400, seed 1) re-ranking by colour too cut exact-item
    # recall@10 from 0.45 to 0.30 at the same type precision@10 (0.67): colour predicted from
    # a photo with a colour cast is unreliable; type still re-ranks, the category step still
    # restricts.
    "rerank_colour": 0.0,
    # the box head's box widened by this share of its size on each side (chosen on validation)
    "box_margin": 0.0,
}


class Objectness(nn.Module):
    """Per-cell object probability logit from a last-convolution map (N, C, h, w)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int = IMAGE_FEATURE_DIM) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.linear = nn.Linear(channels, 1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = maps.permute(0, 2, 3, 1)
        return self.linear((x - self.mean) / self.std).squeeze(-1)


@dataclass(frozen=True)
class FirstPass:
    """The whole-photo backbone pass of non-studio photos: each padded to a square (``offsets``:
    where the photo sits in it), the last-convolution ``maps`` (N, C, h, w) and the object box
    found in each square, ``(box, mask)`` or None (the whole frame is used)."""

    squares: list[Image.Image]
    offsets: list[tuple[int, int]]
    maps: np.ndarray
    found: list[Any]


@dataclass(frozen=True)
class Located:
    """Where the object of one photo is and the inputs of both granularities."""

    box: tuple[int, int, int, int]  # in the photo's pixels
    source: str  # "background" (studio crop), "objectness" or "full"
    object_inputs: np.ndarray  # (IMAGE_INPUT_DIM,)
    whole_inputs: np.ndarray
    # what the category step reads for this photo instead of the attribute head on its vector
    # (the type head's distribution, see ShopperModel.category_inputs); None: as before
    types: dict[str, float] | None = None
    category_alpha: float | None = None
    category_threshold: float | None = None


class TypeHead(nn.Module):
    """Article-type logits from standardised features (:meth:`ShopperModel.type_features`)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, in_dim: int, hidden: int, n_types: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_types)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def border_uniformity(arr: np.ndarray, bg: tuple[int, int, int], threshold: float) -> float:
    """Share of the 2-pixel frame within ``threshold`` of the border colour ``bg``."""
    frame = np.concatenate(
        [arr[:2].reshape(-1, 3), arr[-2:].reshape(-1, 3), arr[:, :2].reshape(-1, 3)]
        + [arr[:, -2:].reshape(-1, 3)]
    ).astype(np.int16)
    diff = np.abs(frame - np.asarray(bg, np.int16)).max(axis=1)
    return float((diff <= threshold).mean())


class ShopperModel:
    """Objectness head + query image tower + config (see the module docstring)."""

    def __init__(
        self,
        objectness: Objectness | None,
        query_tower: nn.Module | None,
        config: dict[str, Any] | None = None,
        type_head: TypeHead | None = None,
        backbone_tail: BackboneTail | None = None,
        box_head: BoxHead | None = None,
    ) -> None:
        self.objectness = None if objectness is None else objectness.eval()
        # regresses the object's box from the whole map (None: the objectness cells' box)
        self.box_head = None if box_head is None else box_head.eval()
        # fine-tuned last backbone stages for the object crop pass (None: the packaged backbone)
        self.backbone_tail = backbone_tail
        self.query_tower = None if query_tower is None else query_tower.eval()
        self.type_head = None if type_head is None else type_head.eval()
        self.config = {**DEFAULT_CONFIG, **(config or {})}

    def rerank_attributes(self, located: Located) -> tuple[str, ...] | None:
        """Attributes the re-rank may use for this photo (None: all)."""
        if located.source == "background" or self.config.get("rerank_colour"):
            return None
        return ("article_type",)

    def fits(self, joint: Any) -> bool:
        """The query tower (if any) reads this joint model's image inputs and writes its space."""
        if self.query_tower is None:
            return True
        first, last = self.query_tower.net[0], self.query_tower.net[-1]
        dim = getattr(joint, "dim", None)
        fits = first.in_features == joint.image_input_dim and last.out_features == dim
        if fits and self.type_head is not None:
            vocab = getattr(joint, "attribute_vocab", {}).get("article_type", [])
            fits = self.type_head.net[-1].out_features == len(vocab)
        return fits

    # ------------------------------------------------------------------ localisation
    def object_probability(self, maps: np.ndarray) -> np.ndarray:
        """(N, h, w) object probabilities of last-convolution maps (N, C, h, w)."""
        if self.objectness is None:  # feature norm, scaled to [0, 1] per photo
            norm = np.linalg.norm(maps, axis=1)
            lo = norm.min(axis=(1, 2), keepdims=True)
            hi = norm.max(axis=(1, 2), keepdims=True)
            return (norm - lo) / np.maximum(hi - lo, 1e-6)
        with torch.inference_mode():
            logits = self.objectness(torch.from_numpy(np.asarray(maps, np.float32)))
        return torch.sigmoid(logits).numpy()

    def is_studio(self, rgb: Image.Image) -> tuple[bool, CropResult]:
        crop = find_main_object(rgb, threshold=int(self.config["crop_threshold"]))
        if crop.full_image:
            return False, crop
        arr = np.asarray(rgb)
        if min(crop.background) < float(self.config.get("studio_min_level", 0.0)):
            return False, crop
        uniform = border_uniformity(arr, crop.background, self.config["crop_threshold"])
        return uniform >= self.config["studio_border"], crop

    def locate(
        self, images: list[Image.Image], encoder: Any, localise: bool = True
    ) -> list[Located]:
        """Both granularities' inputs of each photo (batched backbone passes). ``localise``
        False: the objectness box is not used (the whole photo is the object too)."""
        out: list[Located | None] = [None] * len(images)
        rgbs = [img.convert("RGB") for img in images]
        studio_rows, other_rows, crops = [], [], {}
        for i, rgb in enumerate(rgbs):
            studio, crop = self.is_studio(rgb)
            crops[i] = crop
            (studio_rows if studio else other_rows).append(i)
        if studio_rows:
            pairs = [
                (
                    pad_to_square(rgbs[i].crop(crops[i].box), crops[i].background),
                    colour_features(rgbs[i], crops[i]),
                )
                for i in studio_rows
            ]  # what crop_and_colour computes, from the crop already found
            feats = encoder.features([p[0] for p in pairs])
            for row, i in enumerate(studio_rows):
                inp = np.concatenate([feats[row], pairs[row][1]]).astype(np.float32)
                out[i] = Located(crops[i].box, "background", inp, inp)
        if other_rows:
            first = self.first_pass([rgbs[i] for i in other_rows], encoder, localise)
            offsets = first.offsets
            whole_feats = first.maps.mean(axis=(2, 3))
            obj_imgs, obj_meta = [], []
            for row, i in enumerate(other_rows):
                rgb = rgbs[i]
                w, h = rgb.size
                full = (0, 0, w, h)
                everything = CropResult(full, True, crops[i].background, np.ones((h, w), bool))
                whole_in = np.concatenate([whole_feats[row], colour_features(rgb, everything)])
                found = first.found[row]
                if found is None:
                    out[i] = Located(full, "full", whole_in.astype(np.float32), whole_in)
                    continue
                (x0, y0, x1, y1), mask = found
                dx, dy = offsets[row]
                box = (max(0, x0 - dx), max(0, y0 - dy), min(w, x1 - dx), min(h, y1 - dy))
                if box[2] - box[0] < 8 or box[3] - box[1] < 8:
                    out[i] = Located(full, "full", whole_in.astype(np.float32), whole_in)
                    continue
                fg = mask[dy : dy + h, dx : dx + w]
                crop = CropResult(box, False, crops[i].background, fg)
                patch = rgb.crop(box)
                obj_imgs.append(pad_to_square(patch, border_colour(np.asarray(patch))))
                obj_meta.append((i, box, colour_features(rgb, crop), whole_in))
            if obj_imgs:
                crop_encoder = encoder
                if self.backbone_tail is not None:
                    crop_encoder = self.backbone_tail.encoder(encoder)
                feats = crop_encoder.features(obj_imgs)
                for row, (i, box, colour, whole_in) in enumerate(obj_meta):
                    inp = np.concatenate([feats[row], colour]).astype(np.float32)
                    out[i] = Located(box, "objectness", inp, whole_in.astype(np.float32))
        return [o for o in out if o is not None]

    def first_pass(self, rgbs: list[Image.Image], encoder: Any, localise: bool = True) -> FirstPass:
        """One batched backbone pass over the (RGB, non-studio) photos padded to squares and
        the object box of each: the box head's when the checkpoint has one (the cells are then
        not scored), else the objectness cells'; no box without ``localise``."""
        squares, offsets = [], []
        for rgb in rgbs:
            sq = pad_to_square(rgb, border_colour(np.asarray(rgb)))
            squares.append(sq)
            offsets.append(((sq.width - rgb.width) // 2, (sq.height - rgb.height) // 2))
        maps = encoder.feature_maps(squares)
        found: list[Any] = [None] * len(squares)
        if localise and squares:
            if self.box_head is not None:
                boxes = self.box_head.boxes(maps)
                found = [self.object_box(None, sq.width, boxes[r]) for r, sq in enumerate(squares)]
            else:
                probs = self.object_probability(maps)
                found = [self.object_box(probs[r], sq.width) for r, sq in enumerate(squares)]
        return FirstPass(squares, offsets, maps, found)

    def object_box(self, prob: np.ndarray | None, side: int, regressed: np.ndarray | None = None):
        """(box, mask) in a ``side`` square: the box head's ``regressed`` box when given, else
        the cells of ``prob`` over the threshold; None: no box (the whole frame is used)."""
        if regressed is not None:
            return square_box(regressed, side, float(self.config.get("box_margin") or 0.0))
        if prob is None:
            raise ValueError("object_box needs the cells' probabilities or a regressed box")
        threshold, margin = self.config["threshold"], self.config["margin"]
        found = box_from_map(prob, side, threshold, margin)
        ratio = float(self.config.get("fallback_ratio") or 0.0)
        if found is None and ratio > 0 and float(prob.max()) > 0:
            found = box_from_map(prob, side, ratio * float(prob.max()), margin)
        return found

    # ------------------------------------------------------------------ embeddings
    def tower_embed(self, joint: Any, inputs: np.ndarray) -> np.ndarray:
        if self.query_tower is None:
            return np.asarray(joint.embed_image_features(inputs), np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(inputs, np.float32))
            emb = nn.functional.normalize(self.query_tower(x), dim=-1)
        return emb.numpy().astype(np.float32)

    def fuse(self, e_object: np.ndarray, e_whole: np.ndarray, weight: float | None = None):
        w = float(self.config["object_weight"] if weight is None else weight)
        v = w * e_object + (1.0 - w) * e_whole
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)).astype(np.float32)

    def embed_located(self, joint: Any, located: list[Located]) -> tuple[np.ndarray, np.ndarray]:
        """(fused embeddings, object inputs) of located photos. Studio shots (the background
        crop) keep the joint tower's embedding, exactly as before shopper photos, unless
        ``config['studio_query_tower']``."""
        obj = np.stack([loc.object_inputs for loc in located])
        whole = np.stack([loc.whole_inputs for loc in located])
        e_o, e_w = self.tower_embed(joint, obj), self.tower_embed(joint, whole)
        return self._fused(joint, located, e_o, e_w, obj), obj

    def _fused(self, joint: Any, located: list[Located], e_o, e_w, obj) -> np.ndarray:
        emb = self.fuse(e_o, e_w)
        studio = np.asarray([loc.source == "background" for loc in located])
        if studio.any() and not self.config.get("studio_query_tower"):
            emb[studio] = np.asarray(joint.embed_image_features(obj[studio]), np.float32)
        return emb

    # ------------------------------------------------------------------ category step
    @staticmethod
    def type_features(
        e_object: np.ndarray, e_whole: np.ndarray, obj: np.ndarray, whole: np.ndarray
    ) -> np.ndarray:
        """The type head's input: both granularities' embeddings and backbone inputs."""
        return np.concatenate([e_object, e_whole, obj, whole], axis=1).astype(np.float32)

    def type_probabilities(
        self, joint: Any, e_object: np.ndarray, e_whole: np.ndarray, located: list[Located]
    ) -> np.ndarray | None:
        """(N, article types) distribution of the type head (None without one)."""
        if self.type_head is None:
            return None
        obj = np.stack([loc.object_inputs for loc in located])
        whole = np.stack([loc.whole_inputs for loc in located])
        x = torch.from_numpy(self.type_features(e_object, e_whole, obj, whole))
        with torch.inference_mode():
            return torch.softmax(self.type_head(x).float(), dim=-1).numpy()

    def category_inputs(
        self, joint: Any, located: list[Located], emb: np.ndarray, head: np.ndarray | None
    ) -> list[Located]:
        """``located`` with what the category step reads (photos that are not studio shots,
        with a type head): ``type_weight * head + (1 - type_weight) * attribute head(emb)``,
        the alpha and threshold chosen on validation shopper photos."""
        if head is None:
            return located
        vocab = [str(v) for v in joint.attribute_vocab["article_type"]]
        attr = joint.attribute_probabilities(emb)["article_type"]
        w = float(self.config.get("type_weight", 1.0))
        mixed = w * head + (1.0 - w) * attr
        alpha = self.config.get("category_alpha")
        threshold = self.config.get("category_threshold")
        out = []
        for i, loc in enumerate(located):
            if loc.source == "background":
                out.append(loc)
                continue
            types = {v: float(p) for v, p in zip(vocab, mixed[i], strict=True)}
            out.append(
                replace(
                    loc,
                    types=types,
                    category_alpha=None if alpha is None else float(alpha),
                    category_threshold=None if threshold is None else float(threshold),
                )
            )
        return out

    def encode(self, joint: Any, located: list[Located]) -> tuple[np.ndarray, np.ndarray, list]:
        """(fused embeddings, object inputs, located with the category step's inputs)."""
        obj = np.stack([loc.object_inputs for loc in located])
        whole = np.stack([loc.whole_inputs for loc in located])
        e_o, e_w = self.tower_embed(joint, obj), self.tower_embed(joint, whole)
        emb = self._fused(joint, located, e_o, e_w, obj)
        head = self.type_probabilities(joint, e_o, e_w, located)
        return emb, obj, self.category_inputs(joint, located, emb, head)

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        def half(mod: nn.Module | None) -> dict[str, torch.Tensor] | None:
            if mod is None:
                return None
            return {
                k: v.detach().float() if k.endswith(("mean", "std")) else v.detach().half()
                for k, v in mod.state_dict().items()
            }

        tower_config = None
        type_config = None
        if self.type_head is not None:
            first, last = self.type_head.net[0], self.type_head.net[-1]
            type_config = {
                "in": int(first.in_features),
                "hidden": int(first.out_features),
                "out": int(last.out_features),
            }
        if self.query_tower is not None:
            first, last = self.query_tower.net[0], self.query_tower.net[-1]
            tower_config = {
                "in": int(first.in_features),
                "hidden": int(first.out_features),
                "out": int(last.out_features),
            }
        return {
            "format": SHOPPER_CHECKPOINT.format,
            "config": self.config,
            "tower_config": tower_config,
            "weights": half(self.objectness),
            "query_tower": half(self.query_tower),
            "type_config": type_config,
            "type_head": half(self.type_head),
            "backbone_tail": None if self.backbone_tail is None else self.backbone_tail.to_state(),
            "box_config": None if self.box_head is None else self.box_head.shape,
            "box_head": half(self.box_head),
        }

    def save(self, path: Path) -> Path:
        return save_checkpoint(self.state(), path)

    @classmethod
    def load(cls, path: Path | None) -> ShopperModel:
        """Load ``shopper.pt`` (a file or a bundle directory; None = the shipped one)."""
        ckpt, state = read_checkpoint(path, SHOPPER_CHECKPOINT)
        try:
            return cls._from_state(state, ckpt)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # malformed parts
            raise ModelUnavailable(
                SHOPPER_CHECKPOINT.mismatch.format(
                    ckpt=ckpt, format=SHOPPER_CHECKPOINT.format, exc=exc
                )
            ) from exc

    @classmethod
    def _from_state(cls, state: dict[str, Any], ckpt: Path) -> ShopperModel:
        from engine.models.joint import _Tower

        objectness = None
        if state.get("weights") is not None:
            objectness = Objectness()
            load_weights(objectness, state["weights"], ckpt, SHOPPER_CHECKPOINT)
        tower = None
        if state.get("query_tower") is not None:
            tc = state.get("tower_config") or {}
            tower = _Tower(int(tc["in"]), int(tc["hidden"]), int(tc["out"]))
            load_weights(tower, state["query_tower"], ckpt, SHOPPER_CHECKPOINT)
        type_head = None
        if state.get("type_head") is not None:
            tc = state.get("type_config") or {}
            type_head = TypeHead(int(tc["in"]), int(tc["hidden"]), int(tc["out"]))
            load_weights(type_head, state["type_head"], ckpt, SHOPPER_CHECKPOINT)
        tail = None
        if state.get("backbone_tail") is not None:
            tail = BackboneTail.from_state(state["backbone_tail"])
        box_head = None
        if state.get("box_head") is not None:
            box_head = BoxHead.from_shape(state["box_config"])
            load_weights(box_head, state["box_head"], ckpt, SHOPPER_CHECKPOINT)
        config = dict(state.get("config") or {})
        return cls(objectness, tower, config, type_head, tail, box_head=box_head)
