"""PCA+ITQ binary codes and Hamming helpers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InvalidInput
from engine.models.binary import BinaryCoder, hamming_distances, hamming_top_k


def _clustered(n: int = 600, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim))
    x = centres[rng.integers(0, 12, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_codes_shape_dtype_and_roundtrip() -> None:
    x = _clustered()
    coder = BinaryCoder.fit(x, n_bits=16, seed=0)
    codes = coder.codes(x)
    assert codes.shape == (600, 2) and codes.dtype == np.uint8
    again = BinaryCoder.from_state(coder.to_state())
    assert np.array_equal(again.codes(x), codes)
    # ITQ rotation keeps the projection orthonormal.
    p = coder.projection
    assert np.allclose(p.T @ p, np.eye(16), atol=1e-4)
    # Bits are roughly balanced (PCA centring).
    assert 0.2 < coder.signs(x).mean() < 0.8


def test_hamming_distances_match_bit_count() -> None:
    a = np.array([[0b10110000, 0xFF]], dtype=np.uint8)
    b = np.array([[0b10110000, 0xFF], [0b00000000, 0x00], [0b10100000, 0x0F]], dtype=np.uint8)
    assert hamming_distances(a, b).tolist() == [[0, 11, 5]]
    assert hamming_top_k(a, b, 2).tolist() == [[0, 2]]


def test_hamming_neighbours_preserve_cosine_neighbours() -> None:
    x = _clustered(800, 32)
    coder = BinaryCoder.fit(x, n_bits=32)
    codes = coder.codes(x)
    top = hamming_top_k(codes[:50], codes, 80)  # a coarse 10% shortlist
    exact = np.argsort(-(x[:50] @ x.T), axis=1)[:, :10]
    recall = np.mean([len(set(e) & set(t)) / 10 for e, t in zip(exact, top, strict=True)])
    assert recall > 0.8
    # A random coder does clearly worse than the learned one on the same shortlist size.
    rng = np.random.default_rng(1)
    rand = BinaryCoder(np.zeros(32, np.float32), rng.standard_normal((32, 32)).astype(np.float32))
    rtop = hamming_top_k(rand.codes(x[:50]), rand.codes(x), 80)
    rrecall = np.mean([len(set(e) & set(t)) / 10 for e, t in zip(exact, rtop, strict=True)])
    assert recall >= rrecall


def test_invalid_arguments() -> None:
    x = _clustered(50, 16)
    with pytest.raises(InvalidInput):
        BinaryCoder.fit(x, n_bits=12)
    with pytest.raises(InvalidInput):
        BinaryCoder.fit(x, n_bits=24)  # more bits than dimensions
    coder = BinaryCoder.fit(x, n_bits=16)
    with pytest.raises(InvalidInput):
        coder.codes(np.zeros((2, 8), np.float32))
    with pytest.raises(InvalidInput):
        hamming_distances(np.zeros((1, 2), np.uint8), np.zeros((1, 3), np.uint8))
