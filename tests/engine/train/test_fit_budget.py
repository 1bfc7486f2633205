"""How ``engine fit`` sizes the shopper-photo model to its time budget (pure)."""

from __future__ import annotations

from engine.train.fit import FitConfig
from engine.train.fit_shopper import shopper_plan, shopper_seconds
from engine.train.shopper import ShopperConfig


def test_without_a_budget_the_run_is_as_configured_with_the_fits_seed_and_threads() -> None:
    cfg = FitConfig(seed=7, threads=3, shopper_config=ShopperConfig(train_items=500, copies=3))
    plan = shopper_plan(cfg, None)
    assert plan is not None
    assert (plan.train_items, plan.copies, plan.seed, plan.threads) == (500, 3, 7, 3)
    assert plan.cache_dir == cfg.cache_dir
    roomy = shopper_plan(cfg, shopper_seconds(cfg.shopper_config) + 1.0)
    assert roomy is not None and (roomy.train_items, roomy.copies) == (500, 3)


def test_a_short_budget_cuts_copies_first_then_items_and_fits() -> None:
    cfg = FitConfig(shopper_config=ShopperConfig(train_items=2000, copies=4))
    full = shopper_seconds(cfg.shopper_config)
    half = shopper_plan(cfg, full / 2)
    assert half is not None
    assert half.train_items == 2000 and 1 <= half.copies < 4
    assert shopper_seconds(half) <= full / 2
    small = shopper_plan(cfg, shopper_seconds(ShopperConfig(train_items=300, copies=1)))
    assert small is not None and small.copies == 1 and 200 < small.train_items <= 300
    assert shopper_plan(cfg, shopper_seconds(ShopperConfig(train_items=1, copies=1))) is None
    assert shopper_plan(cfg, 0.0) is None


def test_the_run_measures_this_machine_and_cuts_to_the_time_left() -> None:
    from engine.train.shopper import cut_to_photos, photos_in

    cfg = ShopperConfig(train_items=2000, copies=4, tail_epochs=6)
    # 0.1 s a validation photo, a training photo ~2.6x that: 10 minutes hold ~2,300 photos
    fits = photos_in(cfg, 600.0, 0.1)
    assert 2000 < fits < 2600
    assert photos_in(ShopperConfig(tail_epochs=0), 600.0, 0.1) > fits  # no tail: cheaper
    assert photos_in(cfg, -5.0, 0.1) == 0
    cut = cut_to_photos(cfg, fits)
    assert cut is not None and cut.copies == 1 and cut.train_items == 2000
    assert cut_to_photos(cfg, 8000) is cfg
    assert cut_to_photos(cfg, 5) is None


def test_a_cached_validation_set_uses_the_estimate_not_a_near_zero_measurement() -> None:
    from engine.train.shopper_budget import (
        ESTIMATED_VAL_SECONDS_PER_PHOTO,
        val_seconds_per_photo,
    )

    assert val_seconds_per_photo(50.0, 500, from_cache=False) == 0.1
    assert val_seconds_per_photo(0.02, 500, from_cache=True) == ESTIMATED_VAL_SECONDS_PER_PHOTO
    assert val_seconds_per_photo(3.0, 0, from_cache=False) == 3.0  # no photos: no division by 0


def test_engine_fit_hands_the_shopper_run_its_uncut_plan_and_the_deadline(
    monkeypatch, tmp_path
) -> None:
    import time

    from engine.train import fit_shopper as part

    seen: dict = {}

    def fake_fit(products, files, images_dir, joint, plan, out, deadline):  # noqa: ANN001
        seen.update(plan=plan, deadline=deadline)
        return {"threshold": 0.5}

    monkeypatch.setattr(part, "fit_shopper", fake_fit)
    monkeypatch.setattr(part.JointModel, "load", staticmethod(lambda *a, **k: object()))
    cfg = FitConfig(shopper_config=ShopperConfig(train_items=2000, copies=4))
    # room for some photos, not all: the part must not cut (fit_shopper cuts from its measure)
    deadline = time.time() + shopper_seconds(cfg.shopper_config) / 2
    report = part.fit_shopper_part([], {}, tmp_path, tmp_path / "joint.pt", cfg, tmp_path, deadline)
    assert report["fitted"] is True
    assert (seen["plan"].train_items, seen["plan"].copies) == (2000, 4)
    assert abs(seen["deadline"] - (deadline - 30.0)) < 1e-6
    seen.clear()
    late = part.fit_shopper_part([], {}, tmp_path, tmp_path / "j.pt", cfg, tmp_path, time.time())
    assert late["fitted"] is False and "budget" in late["note"] and not seen
