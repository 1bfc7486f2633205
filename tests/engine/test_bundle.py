"""Model bundles: the shipped default is one, manifests round-trip, coverage decides "fitted"."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.bundle import (
    DEFAULT_BUNDLE,
    CatalogFitCheck,
    Manifest,
    coverage,
    not_fitted_message,
    read_manifest,
    write_manifest,
)
from engine.errors import InvalidInput
from engine.files import file_sha1
from engine.settings import ModelSettings


def test_shipped_default_is_a_bundle() -> None:
    manifest = read_manifest(None)
    assert manifest is not None and manifest.name == "default"
    for part in manifest.parts.values():  # the manifest names the files as shipped
        assert file_sha1(DEFAULT_BUNDLE / part["file"]) == part["sha1"], part["file"]
    assert "Tshirts" in manifest.label_spaces["article_type"]


def test_manifest_round_trip(tmp_path: Path) -> None:
    m = Manifest(name="x", label_spaces={"article_type": ["A", "B"]}, notes=["n"])
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    assert read_manifest(tmp_path / "missing") is None
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="cannot read bundle manifest"):
        read_manifest(tmp_path)


def test_coverage_decides_fitted() -> None:
    cov = coverage(["Dress", "Jeans"], {"dress": 8, "Jeans": 1, "Sombrero": 1})
    assert cov.covered == pytest.approx(0.9) and cov.fitted
    cov = coverage(["Tshirts"], {"Dress": 5, "Jeans": 5})
    assert cov.covered == 0 and not cov.fitted and cov.unknown_values == {"Dress": 5, "Jeans": 5}
    assert "python -m engine fit" in not_fitted_message(cov, None)
    assert not coverage(["A"], {}).fitted  # nothing labelled: no claim


def test_fit_check_caches_and_survives_errors() -> None:
    calls = {"n": 0}

    def counts() -> dict[str, int]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("cluster down")
        return {"Dress": 3}

    check = CatalogFitCheck(counts, lambda: ["Tshirts"], ttl_s=0.0)
    assert check.fitted() is False
    assert check.fitted() is False  # the error keeps the last answer
    cached = CatalogFitCheck(counts, lambda: ["Dress"], ttl_s=3600)
    assert cached.fitted() and cached.fitted() and calls["n"] == 3


def test_bundle_paths_in_settings(tmp_path: Path) -> None:
    ms = ModelSettings(bundle=tmp_path)
    assert ms.joint_path == tmp_path and ms.compat_path == tmp_path
    ms = ModelSettings(bundle=tmp_path, joint_checkpoint=tmp_path / "j.pt")
    assert ms.joint_path == tmp_path / "j.pt" and ms.compat_path == tmp_path
    assert ModelSettings().joint_path is None
