"""The shopper-photo run's configuration and its sizing to a time budget
(:mod:`engine.train.shopper` trains it; ``engine fit`` sizes it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from engine.train.features import DEFAULT_CACHE_DIR
from engine.train.shopper_backbone import DEFAULT_SPLIT

logger = logging.getLogger(__name__)


@dataclass
class ShopperConfig:
    """What :func:`fit_shopper` trains (the CLI flags of ``python -m engine.train shopper``)."""

    train_items: int = 2000
    val_items: int | None = None  # None: every validation item
    epochs: int = 12  # query tower
    copies: int = 4  # synthetic photos per item
    extra_copies: int | None = None  # photos per item beyond the first CHUNK items
    type_hidden: int = 512  # 0: no type head
    type_epochs: int = 20
    type_members: int = 1
    tune_backbone: int = DEFAULT_SPLIT  # 0: packaged backbone for object crops
    tail_epochs: int = 6
    tail_type_weight: float = 0.0
    # the studio type head's reading of the crop as a target for the tail (0: off)
    tail_teacher_weight: float = 0.0
    seed: int = 0
    threads: int = 1
    cache_dir: Path = DEFAULT_CACHE_DIR
    studio_cache_dir: Path | None = None


MIN_TRAIN_ITEMS = 20
# a training photo costs about this many times a validation photo's generation: its own
# generation plus the backbone tail's epochs, the box head, the tower and the type head (2-core
# CPU, 2,000 Myntra items x 4: generation ~0.1 s a photo, a tail epoch ~0.022 s, the box head
# ~0.006 s (48 s for the first 2,000 items' maps), the rest ~0.03 s)
TRAIN_COST_BASE, TRAIN_COST_PER_TAIL_EPOCH = 1.36, 0.22
# a validation photo's generation when the validation set came from the cache and its cost
# could not be measured (2-core CPU, Myntra; consistent with fit_shopper's planning estimate)
ESTIMATED_VAL_SECONDS_PER_PHOTO = 0.1


def cut_to_photos(cfg: ShopperConfig, photos: int) -> ShopperConfig | None:
    """``cfg`` with at most ``photos`` training photos: fewer copies per item first, then fewer
    items (None: not even :data:`MIN_TRAIN_ITEMS`); unchanged when it fits."""
    if cfg.train_items * cfg.copies <= photos:
        return cfg
    if photos < MIN_TRAIN_ITEMS:
        return None
    copies = max(1, min(cfg.copies, photos // max(cfg.train_items, 1)))
    items = min(cfg.train_items, photos // copies)
    logger.warning(
        "shopper-photo model: %d items x %d photos instead of %d x %d to stay in the time budget",
        items,
        copies,
        cfg.train_items,
        cfg.copies,
    )
    return replace(cfg, train_items=items, copies=copies, extra_copies=None)


def val_seconds_per_photo(elapsed: float, photos: int, from_cache: bool) -> float:
    """A validation photo's generation cost: measured (``elapsed`` over ``photos``), or
    :data:`ESTIMATED_VAL_SECONDS_PER_PHOTO` when the photos came from the cache."""
    if from_cache:
        return ESTIMATED_VAL_SECONDS_PER_PHOTO
    return elapsed / max(photos, 1)


def photos_in(cfg: ShopperConfig, seconds: float, val_seconds_per_photo: float) -> int:
    """Training photos that fit in ``seconds``, from the measured generation cost of a
    validation photo."""
    per = val_seconds_per_photo * (TRAIN_COST_BASE + TRAIN_COST_PER_TAIL_EPOCH * cfg.tail_epochs)
    return int(max(0.0, seconds) / max(per, 1e-6))


MIN_VAL_ITEMS = 2
FEW_VAL_ITEMS = 50  # fewer: the choices made on validation are noisy (logged)
