"""The looks evaluation task: held-out looks, metric keys, baseline, and unavailability."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.catalog import is_test_id
from engine.errors import ModelUnavailable
from engine.looks.compat import CompatModel, build_net
from engine.looks.format import write_looks
from engine.settings import ModelSettings, Settings
from evaluation.report import TASK_KEYS
from evaluation.tasks.base import EvalContext
from evaluation.tasks.looks import evaluate, run
from tests.engine.looks.test_looks_compat import _synthetic


def _ctx(tmp_path: Path, products: list, looks_path: Path | None = None) -> EvalContext:
    return EvalContext(
        settings=Settings(),
        catalog=products,
        images_dir=tmp_path / "no-images",
        out_dir=tmp_path / "out",
        looks_path=looks_path,
        seed=0,
    )


def test_evaluate_reports_the_fixed_keys(tmp_path: Path) -> None:
    products, looks, vectors = _synthetic(200)
    path = tmp_path / "looks.jsonl"
    write_looks(looks, path)
    torch.manual_seed(0)
    model = CompatModel(build_net({"hidden": 32, "space": 16, "pair_dim": 8}).eval(), {})
    calls: list[int] = []

    def vector_fn(items: list) -> object:
        calls.append(len(items))
        return vectors

    ctx = _ctx(tmp_path, products, path)
    res = evaluate(ctx, model, vector_fn)  # type: ignore[arg-type]
    assert res.metrics is not None
    for key in TASK_KEYS["looks"]:
        assert res.metrics[key] is not None and 0.0 <= res.metrics[key] <= 1.0
    assert res.metrics["test_looks"] > 0 and res.metrics["fitb_questions"] > 0
    # the synthetic looks share one type per slot: the co-category baseline is at chance
    assert res.metrics["fitb_accuracy_popularity_baseline"] == pytest.approx(0.25)
    assert res.baselines["fitb_accuracy"]["random"] == 0.25
    # vectors are computed once per context (cached for other runs)
    evaluate(ctx, model, vector_fn)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_no_held_out_looks_is_unavailable(tmp_path: Path) -> None:
    products, looks, vectors = _synthetic(50)
    train_only = [lk for lk in looks if not is_test_id(lk.extra["anchor_id"])]
    assert train_only
    model = CompatModel(build_net({}).eval(), {})
    res = evaluate(_ctx(tmp_path, products), model, lambda _: vectors, looks=train_only)
    assert res.metrics is None and "held-out" in (res.reason or "")


def test_run_without_models_raises_model_unavailable(tmp_path: Path) -> None:
    products, _, _ = _synthetic(10)
    ctx = _ctx(tmp_path, products)
    ctx.settings = Settings(models=ModelSettings(joint_checkpoint=tmp_path / "none.pt"))
    with pytest.raises(ModelUnavailable):
        run(ctx)
