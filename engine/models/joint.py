"""The joint image-text embedding space (trained heads over frozen encoders).

Image side: main-object crop -> EfficientNet-Lite0 pooled features (1280) + foreground colour
descriptor (:mod:`engine.models.colour`) -> standardise -> MLP -> ``dim``, L2-normalised.
Text side: ``text_for_product`` / free text -> MiniLM (384) -> MLP -> ``dim``, L2-normalised.
An attribute head (a small MLP on the normalised joint embedding, shared by both modalities)
predicts article type, colour, gender, usage, pattern, ... A PCA+ITQ :class:`BinaryCoder` learned
on training embeddings gives compact codes. The checkpoint (``engine/models/weights/joint.pt``)
holds only these heads (float16) and the coder; the encoders come from their pip packages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from engine.catalog import Product
from engine.errors import InvalidInput, ModelUnavailable
from engine.models.binary import BinaryCoder
from engine.models.checkpoints import load_weights, read_checkpoint, save_checkpoint
from engine.models.encoders import (
    TEXT_FEATURE_DIM,
    ImageEncoder,
    TextEncoder,
    apply_num_threads,
    resolve_device,
)
from engine.models.features import IMAGE_INPUT_DIM, image_inputs
from engine.models.versions import JOINT_CHECKPOINT

logger = logging.getLogger(__name__)

WEIGHTS_DIR = JOINT_CHECKPOINT.default.parent
DEFAULT_CHECKPOINT = JOINT_CHECKPOINT.default
CHECKPOINT_FORMAT = JOINT_CHECKPOINT.format

# Attribute name -> how to read it from a Product.
ATTRIBUTE_FIELDS: dict[str, str] = {
    "article_type": "article_type",
    "base_colour": "base_colour",
    "gender": "gender",
    "usage": "usage",
    "sub_category": "sub_category",
    "master_category": "master_category",
    "pattern": "attributes.Pattern",
    "sleeve_length": "attributes.Sleeve Length",
    "neck": "attributes.Neck",
}

# Description sections that carry no visual information.
_BOILERPLATE = re.compile(
    r"\b(wash ?care|warranty|fitting|model statistics|size & fit|size and fit|material & care|"
    r"the model \(height|machine wash|hand wash|dry clean|style note|c ?are)\b",
    re.IGNORECASE,
)


def product_attribute(
    product: Product, name: str, fields: dict[str, str] | None = None
) -> str | None:
    """The value of one attribute of a product, or None. ``fields`` maps attribute names to
    product fields (``"attributes.<Name>"`` for attribute columns); default
    :data:`ATTRIBUTE_FIELDS`, a fitted model's own in ``JointModel.attribute_fields``."""
    table = ATTRIBUTE_FIELDS if fields is None else fields
    field = table.get(name)
    if field is None:
        return None
    if field.startswith("attributes."):
        value = product.attributes.get(field.split(".", 1)[1])
    else:
        value = getattr(product, field)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def visual_description(description: str | None, max_words: int = 30) -> str:
    """The leading, visual part of a description (care/warranty boilerplate cut off)."""
    if not description:
        return ""
    text = re.sub(r"^\s*composition\s+", "", description.strip(), flags=re.IGNORECASE)
    match = _BOILERPLATE.search(text)
    if match:
        text = text[: match.start()]
    return " ".join(text.split()[:max_words])


def text_for_product(product: Product) -> str:
    """The text side of a product: title, key attributes and the visual description."""
    parts = [product.title]
    attrs = [
        product.gender,
        product.article_type,
        product.base_colour,
        product.usage,
        product.attributes.get("Pattern"),
        product.attributes.get("Sleeve Length"),
        product.attributes.get("Neck"),
    ]
    attr_text = ", ".join(a for a in attrs if a)
    if attr_text:
        parts.append(attr_text)
    desc = visual_description(product.description)
    if desc:
        parts.append(desc)
    return ". ".join(parts)


class _Tower(nn.Module):
    """Standardise -> Linear -> GELU -> Dropout -> Linear (residual-free, small)."""

    mean: torch.Tensor  # registered buffers
    std: torch.Tensor

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class JointNet(nn.Module):
    """The trainable part: two towers, the attribute head and the temperature."""

    def __init__(
        self,
        *,
        dim: int,
        image_in: int,
        text_in: int,
        hidden: int,
        attribute_sizes: dict[str, int],
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.image_tower = _Tower(image_in, hidden, dim, dropout)
        self.text_tower = _Tower(text_in, hidden, dim, dropout)
        self.attribute_names = list(attribute_sizes)
        self.attribute_sizes = [attribute_sizes[n] for n in self.attribute_names]
        self.attr_head = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, max(1, sum(self.attribute_sizes)))
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def embed_image(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.image_tower(x), dim=-1)

    def embed_text(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text_tower(x), dim=-1)

    def attribute_logits(self, emb: torch.Tensor) -> list[torch.Tensor]:
        # The head sees a scaled embedding: unit vectors are tiny inputs for an MLP.
        return list(torch.split(self.attr_head(emb * 8.0), self.attribute_sizes, dim=-1))


class ColourHead(nn.Module):
    """Base colour straight from a photo's inputs (backbone features + colour descriptor).

    The attribute head reads the 256-d joint embedding, which keeps what matches text and loses
    part of the colour signal; this head reads the raw image inputs instead and is trained on
    many more photos (the 60x80 set too; ``python -m engine.train colour``). When a checkpoint
    has one, photos' ``base_colour`` probabilities average its own with the attribute head's.
    """

    mean: torch.Tensor  # registered buffers
    std: torch.Tensor

    def __init__(self, in_dim: int, n_colours: int, hidden: int = 512, dropout: float = 0.3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_colours)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class JointModel:
    """Embeds images and texts into one normalised space; predicts attributes; binary codes."""

    def __init__(
        self,
        net: JointNet,
        attribute_vocab: dict[str, list[str]],
        binary: BinaryCoder | None,
        *,
        config: dict[str, Any] | None = None,
        device: str = "auto",
        batch_size: int = 32,
        num_threads: int | None = None,
        colour_head: ColourHead | None = None,
        type_head: ColourHead | None = None,
    ) -> None:
        apply_num_threads(num_threads)
        self.device = resolve_device(device)
        self.net = net.eval().to(self.device)
        # over attribute_vocab["base_colour"]; see ColourHead
        self.colour_head = None if colour_head is None else colour_head.eval().to(self.device)
        # the same kind of head over attribute_vocab["article_type"] (python -m engine fit)
        self.type_head = None if type_head is None else type_head.eval().to(self.device)
        self.attribute_vocab = attribute_vocab
        self.binary = binary
        self.config = dict(config or {})
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._image_encoder: ImageEncoder | None = None
        self._text_encoder: TextEncoder | None = None

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        last = self.net.image_tower.net[-1]
        assert isinstance(last, nn.Linear)
        return int(last.out_features)

    @property
    def image_input_dim(self) -> int:
        return int(self.net.image_tower.mean.shape[0])

    @property
    def text_input_dim(self) -> int:
        return int(self.net.text_tower.mean.shape[0])

    text_for_product = staticmethod(text_for_product)

    @property
    def attribute_fields(self) -> dict[str, str]:
        """Attribute name -> product field of this model's attribute head (fitted models store
        theirs: each catalog has its own label spaces)."""
        stored = self.config.get("attribute_fields")
        if isinstance(stored, dict) and stored:
            return {str(k): str(v) for k, v in stored.items()}
        return {k: v for k, v in ATTRIBUTE_FIELDS.items() if k in self.attribute_vocab}

    # ------------------------------------------------------------------ encoders (lazy)
    @property
    def image_encoder(self) -> ImageEncoder:
        if self._image_encoder is None:
            self._image_encoder = ImageEncoder(
                str(self.device), batch_size=self.batch_size, num_threads=self.num_threads
            )
        return self._image_encoder

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text_encoder is None:
            self._text_encoder = TextEncoder(
                str(self.device), batch_size=max(self.batch_size, 64), num_threads=self.num_threads
            )
        return self._text_encoder

    def accelerate(self, threads: int | None = None) -> str:
        """Run the frozen backbones with ONNX Runtime when available and equivalent to PyTorch
        (:func:`engine.models.accel.accelerate`); returns e.g. ``'image=onnx text=onnx'``."""
        from engine.models.accel import accelerate, runtime_label

        image, text = accelerate(self.image_encoder, self.text_encoder, threads=threads)
        self._image_encoder, self._text_encoder = image, text
        return runtime_label(image, text)

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Backbone + colour inputs (N, IMAGE_INPUT_DIM): compute once, reuse for everything."""
        return image_inputs(list(images), self.image_encoder)

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM features (N, 384) of texts."""
        return self.text_encoder.encode([str(t) for t in texts])

    # ------------------------------------------------------------------ embeddings
    def _run(self, fn: Any, x: np.ndarray, expected_dim: int, what: str) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != expected_dim:
            raise InvalidInput(
                f"{what} must have shape (N, {expected_dim}), got {tuple(arr.shape)}",
                expected=expected_dim,
            )
        if arr.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for start in range(0, arr.shape[0], 4096):
                t = torch.from_numpy(arr[start : start + 4096]).to(self.device)
                out.append(fn(t).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def embed_image_features(self, features: np.ndarray) -> np.ndarray:
        """(N, dim) normalised embeddings from precomputed :meth:`image_features`."""
        return self._run(self.net.embed_image, features, self.image_input_dim, "image features")

    def embed_text_features(self, features: np.ndarray) -> np.ndarray:
        """(N, dim) normalised embeddings from precomputed :meth:`text_features`."""
        return self._run(self.net.embed_text, features, self.text_input_dim, "text features")

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, dim) float32 L2-normalised image embeddings."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_image_features(self.image_features(images))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32 L2-normalised text embeddings."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_text_features(self.text_features(texts))

    def codes(self, embeddings: np.ndarray) -> np.ndarray:
        """Packed binary codes of joint embeddings (see :mod:`engine.models.binary`)."""
        if self.binary is None:
            raise ModelUnavailable("this checkpoint has no binary coder")
        return self.binary.codes(embeddings)

    # ------------------------------------------------------------------ attributes
    def attribute_probabilities(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Attribute name -> (N, n_values) probabilities from joint embeddings."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise InvalidInput(f"embeddings must have shape (N, {self.dim})")
        with torch.inference_mode():
            logits = self.net.attribute_logits(torch.from_numpy(emb).to(self.device))
        return {
            name: torch.softmax(lg, dim=-1).float().cpu().numpy()
            for name, lg in zip(self.net.attribute_names, logits, strict=True)
        }

    def image_attribute_probabilities(
        self, features: np.ndarray, embeddings: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Attribute probabilities of photos from their :meth:`image_features`: the attribute
        head on the image embeddings (``embeddings``, when the caller already has them);
        ``base_colour`` averaged with the colour head's when the checkpoint has one (weight
        ``config['colour_head_weight']``, chosen on validation), ``article_type`` with the type
        head's (``config['type_head_weight']``)."""
        if embeddings is None:
            embeddings = self.embed_image_features(features)
        probs = self.attribute_probabilities(embeddings)
        for name, head, key in (
            ("base_colour", self.colour_head, "colour_head_weight"),
            ("article_type", self.type_head, "type_head_weight"),
        ):
            if head is None or name not in probs:
                continue
            logits = self._run(head, features, self.image_input_dim, "image features")
            head_p = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
            w = float(self.config.get(key, 0.5))
            probs[name] = (w * head_p + (1 - w) * probs[name]).astype(np.float32)
        return probs

    def predict_attributes(
        self,
        inputs: Sequence[Image.Image] | np.ndarray,
        *,
        top_k: int | None = 5,
    ) -> list[dict[str, dict[str, float]]]:
        """Per item: attribute -> {value: probability} (the ``top_k`` most likely; None = all).

        ``inputs`` are PIL images, precomputed image features (N, IMAGE_INPUT_DIM) or joint
        embeddings (N, dim).
        """
        if isinstance(inputs, np.ndarray) and inputs.ndim == 2 and inputs.shape[1] == self.dim:
            probs = self.attribute_probabilities(inputs.astype(np.float32))
        elif isinstance(inputs, np.ndarray):
            probs = self.image_attribute_probabilities(inputs)
        else:
            images = list(inputs)
            if not images:
                return []
            probs = self.image_attribute_probabilities(self.image_features(images))
        n = next(iter(probs.values())).shape[0] if probs else 0
        result: list[dict[str, dict[str, float]]] = [{} for _ in range(n)]
        for name, p in probs.items():
            vocab = self.attribute_vocab[name]
            order = np.argsort(-p, axis=1)
            if top_k is not None:
                order = order[:, :top_k]
            for i in range(p.shape[0]):
                result[i][name] = {vocab[j]: float(p[i, j]) for j in order[i]}
        return result

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        """Everything the checkpoint holds (weights as float16 tensors)."""
        weights = {k: v.detach().cpu().to(torch.float16) for k, v in self.net.state_dict().items()}
        # Standardisation statistics and the temperature keep float32 precision.
        for key in list(weights):
            if key.endswith((".mean", ".std")) or key == "logit_scale":
                weights[key] = self.net.state_dict()[key].detach().cpu().float()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config,
            "attribute_vocab": self.attribute_vocab,
            "weights": weights,
            "binary": None
            if self.binary is None
            else {k: torch.from_numpy(v) for k, v in self.binary.to_state().items()},
            "colour_head": None
            if self.colour_head is None
            else colour_head_state(self.colour_head),
            "type_head": None if self.type_head is None else colour_head_state(self.type_head),
        }

    def save(self, path: Path) -> Path:
        return save_checkpoint(self.state(), path)

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        device: str = "auto",
        *,
        batch_size: int = 32,
        num_threads: int | None = None,
    ) -> JointModel:
        """Load a checkpoint (None = the one shipped in ``engine/models/weights/``)."""
        ckpt, state = read_checkpoint(path, JOINT_CHECKPOINT)
        config = dict(state["config"])
        vocab = {str(k): [str(v) for v in vals] for k, vals in state["attribute_vocab"].items()}
        net = build_net(config, vocab)
        load_weights(net, state["weights"], ckpt, JOINT_CHECKPOINT)
        binary = None
        if state.get("binary") is not None:
            binary = BinaryCoder.from_state({k: v.numpy() for k, v in state["binary"].items()})
        colour_head = None
        if state.get("colour_head") is not None:
            colour_head = build_colour_head(config, vocab)
            load_weights(colour_head, state["colour_head"], ckpt, JOINT_CHECKPOINT)
        type_head = None
        if state.get("type_head") is not None:
            type_head = build_colour_head(config, vocab, "article_type")
            load_weights(type_head, state["type_head"], ckpt, JOINT_CHECKPOINT)
        return cls(
            net,
            vocab,
            binary,
            config=config,
            device=device,
            batch_size=batch_size,
            num_threads=num_threads,
            colour_head=colour_head,
            type_head=type_head,
        )


def build_net(config: dict[str, Any], vocab: dict[str, list[str]]) -> JointNet:
    return JointNet(
        dim=int(config.get("dim", 256)),
        image_in=int(config.get("image_in", IMAGE_INPUT_DIM)),
        text_in=int(config.get("text_in", TEXT_FEATURE_DIM)),
        hidden=int(config.get("hidden", 512)),
        attribute_sizes={k: len(v) for k, v in vocab.items()},
        dropout=float(config.get("dropout", 0.1)),
    )


def build_colour_head(
    config: dict[str, Any], vocab: dict[str, list[str]], attribute: str = "base_colour"
) -> ColourHead:
    """A head over photo inputs for ``attribute`` (the colour head; the type head likewise)."""
    hidden_key = "colour_hidden" if attribute == "base_colour" else "type_hidden"
    return ColourHead(
        int(config.get("image_in", IMAGE_INPUT_DIM)),
        len(vocab.get(attribute, [])),
        hidden=int(config.get(hidden_key, 512)),
    )


def colour_head_state(head: ColourHead) -> dict[str, torch.Tensor]:
    """float16 weights, float32 standardisation statistics."""
    return {
        k: v.detach().cpu().float() if k in ("mean", "std") else v.detach().cpu().half()
        for k, v in head.state_dict().items()
    }


def load(path: Path | None = None, device: str = "auto", **kwargs: Any) -> JointModel:
    """Module-level shortcut for :meth:`JointModel.load`."""
    return JointModel.load(path, device, **kwargs)
