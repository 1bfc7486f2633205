"""The joint model's training data: the catalog's attribute vocabularies and labels, the text
variants of every product and the image inputs of its photos (:func:`prepare_products`), with
the fixed validation slice of the training items (:func:`is_val_id`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.catalog import Product, is_test_id, load_catalog
from engine.models.accel import accelerate_image
from engine.models.encoders import ImageEncoder, TextEncoder
from engine.models.joint import (
    ATTRIBUTE_FIELDS,
    product_attribute,
    text_for_product,
)
from engine.train.features import (
    DEFAULT_CACHE_DIR,
    cached_image_files,
    cached_tar_image_inputs,
    cached_text_features,
)

logger = logging.getLogger(__name__)

# a value joins its label space with this many training examples: a type with 2-4 products
# (a fragrance, a cushion case) is usually distinct enough to learn, and left out it can never
# be predicted (Mango: 5 types of 4 training products each, 0.6% of the test photos); a label
# space itself needs two values seen 5+ times (engine.train.label_spaces)
MIN_VALUE_COUNT = 2


def is_val_id(item_id: str) -> bool:
    """A fixed validation slice of the training items (never a test item)."""
    digest = hashlib.sha1(f"val:{item_id}".encode()).hexdigest()
    return not is_test_id(item_id) and int(digest, 16) % 10 == 0


def title_text(product: Product) -> str:
    return product.title


def attribute_phrase(product: Product) -> str:
    """A short query-like phrase: 'men blue striped shirts'."""
    parts = [
        product.gender,
        product.base_colour,
        product.attributes.get("Pattern"),
        product.article_type,
    ]
    return " ".join(p for p in parts if p).lower() or product.title


TEXT_VARIANTS = {"full": text_for_product, "title": title_text, "phrase": attribute_phrase}


@dataclass
class TrainConfig:
    seed: int = 0
    epochs: int = 25
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dim: int = 256
    hidden: int = 512
    dropout: float = 0.2
    input_noise: float = 0.3
    input_dropout: float = 0.2
    attr_weight: float = 0.5
    text_attr_weight: float = 0.25
    hard_fraction: float = 0.5
    supcon_weight: float = 0.5
    supcon_temperature: float = 0.1
    variant_probs: tuple[float, float, float] = (0.6, 0.25, 0.15)
    use_colour: bool = True
    small_images: bool = False
    photographed_only: bool = False
    full_text_for_all: bool = False
    small_image_size: int = 224  # ingest encodes every photo at 224, small ones too
    n_bits: int = 256
    num_threads: int = 2
    max_seconds: float | None = None  # stop after the epoch that would run past this budget
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    products: list[Product]
    vocab: dict[str, list[str]]
    labels: dict[str, np.ndarray]  # attribute -> (n_products,) int, -1 = unknown
    text: dict[str, np.ndarray]  # variant -> (n_products, 384)
    image_rows: np.ndarray  # (n_pairs,) product index of each image row
    image: np.ndarray  # (n_pairs, IMAGE_INPUT_DIM)
    image_source: np.ndarray  # (n_pairs,) 0 = 224px photo, 1 = small photo
    fields: dict[str, str] = field(default_factory=lambda: dict(ATTRIBUTE_FIELDS))


def build_vocab(
    products: list[Product], fields: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Per attribute, the values seen at least MIN_VALUE_COUNT times (sorted); attributes with
    fewer than two such values are left out (a label space the catalog does not have)."""
    fields = ATTRIBUTE_FIELDS if fields is None else fields
    vocab = {}
    for name in fields:
        counts = Counter(
            v for p in products if (v := product_attribute(p, name, fields)) is not None
        )
        values = sorted(v for v, c in counts.items() if c >= MIN_VALUE_COUNT)
        if len(values) >= 2:
            vocab[name] = values
        else:
            logger.info("attribute %s skipped: %d value(s) seen often enough", name, len(values))
    return vocab


def encode_labels(
    products: list[Product], vocab: dict[str, list[str]], fields: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    out = {}
    for name, values in vocab.items():
        index = {v: i for i, v in enumerate(values)}
        out[name] = np.asarray(
            [index.get(product_attribute(p, name, fields) or "", -1) for p in products],
            dtype=np.int64,
        )
    return out


def prepare(
    catalog_path: Path,
    images_dir: Path,
    *,
    small_tar: Path | None,
    cfg: TrainConfig,
    cache_dir: Path = DEFAULT_CACHE_DIR,
) -> Dataset:
    """The development catalog (our own format, photos ``<id>.jpg``)."""
    products = load_catalog(catalog_path)
    if cfg.photographed_only:
        products = [p for p in products if (Path(images_dir) / f"{p.id}.jpg").is_file()]
    files = {p.id: Path(images_dir) / f"{p.id}.jpg" for p in products}
    return prepare_products(
        products, files, images_dir, small_tar=small_tar, cfg=cfg, cache_dir=cache_dir
    )


def prepare_products(
    products: list[Product],
    image_files: dict[str, Path],
    images_dir: Path,
    *,
    cfg: TrainConfig,
    fields: dict[str, str] | None = None,
    small_tar: Path | None = None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
) -> Dataset:
    """Any catalog: ``image_files`` maps item id -> its photo (under ``images_dir``, which
    names the feature cache); ``fields`` the attributes to learn (default ATTRIBUTE_FIELDS)."""
    logger.info("catalog: %d products", len(products))
    train_products = [p for p in products if not is_test_id(p.id)]
    vocab = build_vocab(train_products, fields)
    labels = encode_labels(products, vocab, fields)

    def text_factory() -> TextEncoder:
        return TextEncoder("auto", num_threads=cfg.num_threads)

    # MiniLM costs ~1.5 GFLOP per 60-token text on CPU: the long product text is encoded for
    # photographed items (the image-text pairs); other items use their title in its place.
    photographed = np.asarray([Path(image_files.get(p.id, "")).is_file() for p in products])
    text = {}
    for name, fn in TEXT_VARIANTS.items():
        if name == "full" and not cfg.full_text_for_all:
            texts = [
                fn(p) if has else p.title for p, has in zip(products, photographed, strict=True)
            ]
        else:
            texts = [fn(p) for p in products]
        text[name] = cached_text_features(texts, text_factory, cache_dir=cache_dir)

    # feature extraction runs the backbone with ONNX Runtime when it matches PyTorch (~3x faster)
    def image_factory() -> Any:
        encoder = ImageEncoder("auto", num_threads=cfg.num_threads)
        return accelerate_image(encoder, threads=cfg.num_threads)

    index = {p.id: i for i, p in enumerate(products)}
    wanted = {p.id: image_files[p.id] for p in products if p.id in image_files}
    ids, feats = cached_image_files(wanted, images_dir, image_factory, cache_dir=cache_dir)
    rows = [index[i] for i in ids]
    sources = [0] * len(ids)
    feat_parts = [feats]
    if small_tar is not None and cfg.small_images:

        def small_factory() -> Any:
            encoder = ImageEncoder(
                "auto", num_threads=cfg.num_threads, image_size=cfg.small_image_size
            )
            return accelerate_image(encoder, threads=cfg.num_threads)

        # only training items' small photos become pairs (test and validation items never do)
        sids, sfeats = cached_tar_image_inputs(
            [p.id for p in products if not is_test_id(p.id) and not is_val_id(p.id)],
            small_tar,
            small_factory,
            cache_dir=cache_dir,
            tag=f"tar{cfg.small_image_size}",
        )
        rows += [index[i] for i in sids]
        sources += [1] * len(sids)
        feat_parts.append(sfeats)
    return Dataset(
        products=products,
        vocab=vocab,
        labels=labels,
        text=text,
        image_rows=np.asarray(rows, dtype=np.int64),
        image=np.concatenate(feat_parts).astype(np.float32),
        image_source=np.asarray(sources, dtype=np.int8),
        fields=dict(ATTRIBUTE_FIELDS if fields is None else fields),
    )
