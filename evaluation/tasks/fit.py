"""The ``fit`` task: the shipped default bundle (zero-shot) next to a fitted bundle, on one
retailer's catalog (``python -m evaluation report --mapping M --models BUNDLE --tasks fit``).

Both bundles are measured the same way on the catalog's test split (``is_test_id``):

* ``text_to_image_recall_at_10``: each test product's text (composed from its fields when it has
  no title) retrieves its own photo among the test photos;
* ``image_to_image_p_at_10_type_colour``: share of a test photo's 10 nearest test photos with its
  type and colour (group);
* ``type_top1`` / ``colour_top1``: photo attribute heads (zero-shot, the shipped label spaces
  rarely hold the catalog's names, so the score is what a bundle that does not know the catalog
  gets from its heads);
* ``category_top1_classifier`` / ``_knn_vote`` / ``_fusion`` and ``category_top1_served``: what
  the search uses: the fusion when the bundle covers the catalog's types, else the k-NN vote over
  the catalog's own labels (the graceful path for an unfitted catalog);
* with looks: FITB (4 choices of the hidden item's slot) and compatibility AUC on held-out looks
  (split by look id), and the co-category popularity baseline.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.bundle import DEFAULT_BUNDLE, coverage
from engine.catalog import Product, is_test_id
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from engine.models.joint import JointModel, text_for_product
from engine.train import metrics as M
from engine.train.category_eval import category_metrics
from engine.train.features import DEFAULT_CACHE_DIR, cached_image_files, cached_text_features
from evaluation.tasks.base import EvalContext, TaskResult

logger = logging.getLogger(__name__)

PRIMARY = "category_top1_served_fitted"


def _features(
    model: JointModel, products: list[Product], files: dict[str, Path], images_dir: Path
) -> tuple[list[Product], np.ndarray, np.ndarray, np.ndarray]:
    """Photographed products with their image inputs and MiniLM text/title features."""
    ids, feats = cached_image_files(
        {p.id: files[p.id] for p in products if p.id in files},
        images_dir,
        lambda: model.image_encoder,
        cache_dir=DEFAULT_CACHE_DIR,
    )
    by_id = {p.id: p for p in products}
    shown = [by_id[i] for i in ids]
    text = cached_text_features([text_for_product(p) for p in shown], lambda: model.text_encoder)
    title = cached_text_features([p.title for p in shown], lambda: model.text_encoder)
    return shown, feats, text, title


def evaluate_bundle(
    bundle: Path,
    products: list[Product],
    files: dict[str, Path],
    images_dir: Path,
    *,
    looks_path: Path | None,
    taxonomy: Taxonomy,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of the module docs for one bundle directory."""
    joint_file = Path(bundle) / "joint.pt"
    model = JointModel.load(joint_file, "cpu")
    shown, feats, text, title = _features(model, products, files, images_dir)
    test = np.asarray([is_test_id(p.id) for p in shown])
    rows = np.flatnonzero(test)
    out: dict[str, float] = {}
    base = M.joint_metrics(model, feats[rows], [shown[i] for i in rows], text[rows], title[rows])
    out["test_photos"] = base["n_items"]
    for key in ("text_to_image_recall_at_10", "image_to_image_p_at_10_type_colour"):
        out[key] = base[key]
    out["type_top1"] = base.get("attr_top1_article_type", 0.0)
    out["colour_top1"] = base.get("attr_top1_base_colour", 0.0)
    alpha = float(model.config.get("category_alpha", 0.5))  # as the search service fuses
    cat = category_metrics(model, feats, shown, ~test, alpha=alpha)
    out.update(cat)
    types = {}
    for p in products:
        if p.article_type:
            types[p.article_type] = types.get(p.article_type, 0) + 1
    cov = coverage(model.attribute_vocab.get("article_type"), types)
    out["type_label_coverage"] = cov.covered
    out["category_top1_served"] = cat.get(
        "category_top1_fusion" if cov.fitted else "category_top1_knn_vote", 0.0
    )
    compat_file = Path(bundle) / "compat.pt"
    if looks_path is not None and compat_file.is_file():
        out.update(
            _looks_metrics(
                model, compat_file, products, files, images_dir, looks_path, taxonomy, seed
            )
        )
    return out


def _looks_metrics(
    joint: JointModel,
    compat_file: Path,
    products: list[Product],
    files: dict[str, Path],
    images_dir: Path,
    looks_path: Path,
    taxonomy: Taxonomy,
    seed: int,
) -> dict[str, float]:
    from engine.looks.compat import CompatModel
    from engine.models.static_text import document_text_encoder
    from engine.train.curated_looks import curated_look_data
    from engine.train.looks import measure_looks

    data, _ = curated_look_data(
        products,
        looks_path,
        joint,
        images_dir,
        taxonomy=taxonomy,
        document_text=document_text_encoder("static", joint.text_encoder),
        image_files=files,
    )
    res = measure_looks(CompatModel.load(compat_file, device="cpu"), data, seed=seed)
    return {
        "fitb_accuracy": res["fitb_accuracy"],
        "fitb_accuracy_popularity_baseline": res.get("fitb_accuracy_popularity_baseline", 0.0),
        "compatibility_auc": res.get("compatibility_auc", 0.0),
        "fitb_questions": res["fitb_questions"],
    }


def run(ctx: EvalContext) -> TaskResult:
    bundle = ctx.settings.models.bundle
    if bundle is None:
        return TaskResult("fit", None, reason="no fitted bundle to compare: pass --models BUNDLE")
    ds = ctx.get_dataset()
    taxonomy = ctx.cache.get("taxonomy", DEFAULT_TAXONOMY)
    files = dict(ds.image_files) or {
        p.id: ds.image(p.id) for p in ds.products if ds.has_photo(p.id)
    }
    t0 = time.time()
    metrics: dict[str, Any] = {}
    for label, where in (("zero_shot", DEFAULT_BUNDLE), ("fitted", Path(bundle))):
        logger.info("fit task: measuring the %s bundle (%s)", label, where)
        values = evaluate_bundle(
            where,
            ds.products,
            files,
            ctx.images_dir,
            looks_path=ctx.looks_path,
            taxonomy=taxonomy,
            seed=ctx.seed,
        )
        metrics.update({f"{k}_{label}": v for k, v in values.items()})
    notes = [
        "zero_shot = the shipped default bundle (engine/models/weights), never fitted to this "
        "catalog; fitted = " + str(bundle),
        f"measured in {time.time() - t0:.0f} s",
    ]
    return TaskResult("fit", metrics, primary=PRIMARY, notes=notes)
