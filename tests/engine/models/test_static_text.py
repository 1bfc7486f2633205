"""The static document text encoder distilled from MiniLM (engine.models.static_text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.catalog import is_test_id, load_catalog
from engine.errors import ModelUnavailable
from engine.models.encoders import TextEncoder
from engine.models.static_text import (
    STATIC_TEXT_FORMAT,
    StaticTextEncoder,
    StaticTextNet,
    tokenize,
)
from engine.settings import SAMPLE_DIR
from engine.train.joint_data import TEXT_VARIANTS


@pytest.fixture(scope="module")
def teacher() -> TextEncoder:
    return TextEncoder("cpu", batch_size=64)


@pytest.fixture(scope="module")
def student(teacher: TextEncoder) -> StaticTextEncoder:
    return StaticTextEncoder.load(teacher)  # the shipped weights over the derived table


def test_shipped_student_agrees_with_minilm_on_held_out_products(
    teacher: TextEncoder, student: StaticTextEncoder
) -> None:
    """Test-split products of the sample (never trained on): every text variant."""
    products = [p for p in load_catalog(SAMPLE_DIR / "catalog.jsonl") if is_test_id(p.id)]
    assert len(products) >= 30
    texts = [str(fn(p)) for p in products for fn in TEXT_VARIANTS.values()]
    ref, got = teacher.encode(texts), student.encode(texts)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (ref * got).sum(axis=1)
    assert cos.mean() > 0.9, cos.mean()
    # and it ranks: each product's full text is nearer its own title than most others' titles
    n = len(products)
    full = got[0 :: len(TEXT_VARIANTS)]
    titles = ref[1 :: len(TEXT_VARIANTS)]
    ranks = (full @ titles.T > (full * titles).sum(axis=1, keepdims=True)).sum(axis=1)
    assert np.mean(ranks < 10) > 0.9, (np.mean(ranks < 10), n)


def test_unseen_words_and_empty_text_still_give_unit_vectors(student: StaticTextEncoder) -> None:
    texts = ["", "zxqv frobnicated kaftan in aubergine", "Röck mit Blümchen", "x" * 5000]
    out = student.encode(texts)
    assert out.shape == (4, 384) and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert student.encode([]).shape == (0, 384)


def test_batches_do_not_change_vectors(student: StaticTextEncoder) -> None:
    texts = [f"blue striped shirt number {i}" for i in range(10)]
    whole = student.encode(texts)
    student.batch_size, saved = 3, student.batch_size
    try:
        parts = student.encode(texts)
    finally:
        student.batch_size = saved
    np.testing.assert_allclose(whole, parts, atol=1e-6)
    np.testing.assert_allclose(whole[4], student.encode([texts[4]])[0], atol=1e-6)


def test_shipped_state_round_trip_keeps_only_trained_rows() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 384)).astype(np.float32)
    net = StaticTextNet(base, hidden=16)
    with torch.no_grad():
        net.delta[[3, 7]] = torch.randn(2, 384)
        net.log_weight.normal_()
        net.mlp[2].weight.normal_()
    state = net.shipped_state()
    assert state["delta_rows"].tolist() == [3, 7]
    other = StaticTextNet(base, hidden=16)
    other.load_shipped(state)
    ids, offs = torch.tensor([1, 3, 7, 2, 9]), torch.tensor([0, 2])
    np.testing.assert_allclose(
        net(ids, offs).detach().numpy(), other(ids, offs).detach().numpy(), atol=2e-3
    )  # half-precision storage


def test_tokenize_offsets(teacher: TextEncoder) -> None:
    flat, offsets = tokenize(teacher.tokenizer, ["red dress", ""], 128)
    assert offsets.tolist()[0] == 0 and len(offsets) == 2
    assert flat[offsets[1] :].tolist() == [
        teacher.tokenizer.cls_token_id,
        teacher.tokenizer.sep_token_id,
    ]


def test_missing_or_foreign_weights_are_clear_errors(teacher: TextEncoder, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="static-text"):
        StaticTextEncoder.load(teacher, tmp_path / "nope.pt")
    bad = tmp_path / "text_static.pt"
    torch.save({"format": STATIC_TEXT_FORMAT, "teacher_digest": "0" * 16, "weights": {}}, bad)
    with pytest.raises(ModelUnavailable, match="another MiniLM"):
        StaticTextEncoder.load(teacher, bad)
    torch.save({"format": "something/1"}, bad)
    with pytest.raises(ModelUnavailable, match="not a static text encoder"):
        StaticTextEncoder.load(teacher, bad)
