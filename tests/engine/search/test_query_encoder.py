"""QueryEncoder's choice of query-text backbone (MiniLM or the static encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from engine.search.query_encoder import QueryEncoder


class Model:
    """Text vectors from MiniLM: all ones; from features: the features themselves."""

    text_encoder = "minilm-teacher"

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 4), np.float32)

    def embed_text_features(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(feats, np.float32)


class Static:
    loads: list[Any] = []

    def __init__(self, teacher: Any) -> None:
        self.teacher = teacher

    @classmethod
    def load(cls, teacher: Any, weights: Any = None) -> Static:
        cls.loads.append(teacher)
        return cls(teacher)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.full((len(texts), 4), 2.0, np.float32)


def test_minilm_is_the_model_s_own_text_tower() -> None:
    enc = QueryEncoder(Model(), text_encoder="minilm")
    assert enc.embed_text("red dress").tolist() == [1.0] * 4


def test_static_goes_through_the_joint_head_and_loads_once(monkeypatch: Any) -> None:
    import engine.models.static_text as st

    monkeypatch.setattr(st, "StaticTextEncoder", Static)
    Static.loads = []
    enc = QueryEncoder(Model(), text_encoder="static")
    assert enc.embed_text("red dress").tolist() == [2.0] * 4
    assert enc.embed_text("blue jeans").tolist() == [2.0] * 4
    assert Static.loads == ["minilm-teacher"]  # built over the model's MiniLM, once


def test_static_is_the_default_and_falls_back_without_a_joint_head() -> None:
    class Plain:  # e.g. a plugged-in CLIP: no separate text head to feed features to
        def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
            return np.ones((len(texts), 4), np.float32)

    enc = QueryEncoder(Plain())
    assert enc.text_encoder == "static"
    assert enc.embed_text("red dress").tolist() == [1.0] * 4


def test_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError):
        QueryEncoder(Model(), text_encoder="clip")
