"""``engine fit``'s shopper-photo part: its share of the time budget and its run (``cfg``: an
:class:`engine.train.fit.FitConfig`, not imported here: that module imports this one)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.catalog import Product
from engine.errors import InvalidInput
from engine.models.joint import JointModel
from engine.train.shopper import fit_shopper
from engine.train.shopper_budget import ShopperConfig, cut_to_photos

logger = logging.getLogger(__name__)

# shopper-photo model, all in, per synthetic training photo, to plan its share before it
# starts (it then measures this machine on its validation photos and cuts to fit): 2-core
# CPU, 8,000 photos of 2,000 Myntra items, backbone from block 8 fine-tuned
SHOPPER_SECONDS_PER_PHOTO = 0.25
SHOPPER_FIXED_SECONDS = 120.0  # validation photos, query tower and type head, choices


def shopper_seconds(plan: ShopperConfig) -> float:
    """Expected seconds of a shopper-photo run (2-core CPU, cold synthetic-photo cache)."""
    return SHOPPER_FIXED_SECONDS + SHOPPER_SECONDS_PER_PHOTO * plan.train_items * plan.copies


def shopper_plan(cfg: Any, seconds: float | None) -> ShopperConfig | None:
    """The shopper-photo run that fits in ``seconds`` (None: none fits); ``seconds`` None (no
    time budget): ``cfg.shopper_config`` as it is."""
    plan = replace(cfg.shopper_config, seed=cfg.seed, threads=cfg.threads, cache_dir=cfg.cache_dir)
    if seconds is None:
        return plan
    photos = int(max(0.0, seconds - SHOPPER_FIXED_SECONDS) / SHOPPER_SECONDS_PER_PHOTO)
    return cut_to_photos(plan, photos)


def fit_shopper_part(
    products: list[Product],
    files: dict[str, Path],
    images_dir: Path,
    joint_path: Path,
    cfg: Any,
    out: Path,
    deadline: float | None,
) -> dict[str, Any]:
    """The shopper-photo model for the joint model at ``joint_path`` (loaded as served) into
    ``out`` (its report; ``fitted`` False with a note when skipped or when the catalog has too
    few photographed items)."""
    if not cfg.shopper:
        return {"fitted": False, "note": "not asked for (--no-shopper)"}
    # the fixed estimate only says whether any run fits; fit_shopper cuts the photos from what
    # it measures on this machine (cutting here too would cut twice)
    if deadline is not None and shopper_plan(cfg, deadline - time.time() - 30.0) is None:
        return {"fitted": False, "note": "no time left in the budget (raise --minutes)"}
    plan = shopper_plan(cfg, None)
    assert plan is not None
    joint = JointModel.load(joint_path, "cpu", num_threads=cfg.threads)
    try:
        metrics = fit_shopper(
            products,
            files,
            images_dir,
            joint,
            plan,
            out,
            None if deadline is None else deadline - 30.0,
        )
    except InvalidInput as exc:
        return {"fitted": False, "note": exc.message}
    keep = ("threshold", "object_weight", "train_items", "train_photos", "val_items", "seconds")
    report = {"fitted": True, "file": "shopper.pt", **{k: metrics.get(k) for k in keep}}
    step = metrics.get("category_step") or {}
    if step:
        th = str(step.get("category_threshold"))
        p10, r10 = (step.get("val_type_p10_recall10_by_threshold") or {}).get(th, (None, None))
        report["val_type_precision_at_10"], report["val_recall_at_10"] = p10, r10
    return report


__all__ = ["fit_shopper_part", "shopper_plan", "shopper_seconds"]
