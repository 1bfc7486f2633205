"""GBDT+LR model: exact portable form, persistence, the shipped default (issue 8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InvalidInput, ModelUnavailable
from engine.ltr.features import FEATURE_SET_VERSION, FEATURES, N_VALUES, impute
from engine.ltr.model import LtrModel
from engine.ltr.rerank import DEFAULT_MODEL_PATH, load_model
from engine.train.ltr_model import TrainParams, fit_gbdt_lr, to_ltr_model, train_model


def _data(n: int = 1200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, len(FEATURES)))
    x[:, :N_VALUES][rng.random((n, N_VALUES)) < 0.15] = np.nan
    x[:, N_VALUES:] = np.isnan(x[:, :N_VALUES])
    signal = np.nan_to_num(x[:, FEATURES.index("rating")], nan=0.5)
    y = (rng.random(n) < 0.2 + 0.6 * signal).astype(int)
    groups = np.repeat(np.arange(n // 20), 20)
    return x, y, groups


def test_portable_model_equals_sklearn_pipeline() -> None:
    x, y, groups = _data()
    fit = fit_gbdt_lr(x, y, groups=groups, params=TrainParams(n_estimators=12, max_depth=3))
    model = to_ltr_model(fit, "t1")
    leaves = fit.gbdt.apply(impute(x, fit.fill_values))[:, :, 0]
    expected = fit.lr.predict_proba(fit.encoder.transform(leaves))[:, 1]
    got = model.predict(x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert ((got >= 0) & (got <= 1)).all()
    assert "rating" in model.used_features()


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    x, y, groups = _data(seed=1)
    model = train_model(
        x,
        y,
        groups=groups,
        params=TrainParams(n_estimators=8),
        version="rt-1",
        metadata={"training_data": {"source": "unit test"}},
    )
    path, meta_path = model.save(tmp_path / "m.json")
    assert meta_path.name == "m.meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["version"] == "rt-1"
    assert meta["features"] == list(FEATURES)
    assert meta["feature_set_version"] == FEATURE_SET_VERSION
    assert meta["training_data"] == {"source": "unit test"}
    assert meta["n_trees"] == 8
    loaded = LtrModel.load(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.metadata["training_data"] == {"source": "unit test"}


def test_feature_subset_and_bad_inputs() -> None:
    x, y, groups = _data(seed=2)
    names = [f for f in FEATURES if not f.startswith("rating")]
    model = train_model(x, y, params=TrainParams(n_estimators=5), feature_names=names)
    assert "rating" not in model.used_features()
    assert model.predict(x).shape == (x.shape[0],)
    with pytest.raises(InvalidInput):
        train_model(x, np.zeros_like(y))
    with pytest.raises(InvalidInput):
        train_model(x, y, feature_names=["no_such_feature"])
    with pytest.raises(InvalidInput):
        model.predict(x[:, :5])


def test_corrupt_or_foreign_files_are_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        LtrModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelUnavailable):
        LtrModel.load(bad)
    x, y, _ = _data(seed=3)
    data = train_model(x, y, params=TrainParams(n_estimators=3)).to_json()
    data["trees"][0]["left"][0] = 999  # child out of range
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(ModelUnavailable):
        LtrModel.load(tmp_path / "c.json")
    data = train_model(x, y, params=TrainParams(n_estimators=3)).to_json()
    data["features"][0] = "feature_from_the_future"
    (tmp_path / "d.json").write_text(json.dumps(data))
    with pytest.raises(ModelUnavailable):
        LtrModel.load(tmp_path / "d.json")


def test_shipped_default_model() -> None:
    model = load_model()
    assert DEFAULT_MODEL_PATH.exists()
    assert model.feature_set_version == FEATURE_SET_VERSION
    assert model.metadata.get("simulated") is True
    assert "SIMULATED" in model.metadata["training_data"]["source"]
    x = np.full((3, len(FEATURES)), np.nan)
    x[:, N_VALUES:] = 1.0
    p = model.predict(x)  # a candidate with nothing known still gets a score
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
