"""Compact binary codes for coarse candidate search (PCA + ITQ), and Hamming helpers.

``BinaryCoder.fit`` centres the training vectors, projects them on their top ``n_bits`` principal
directions and learns an orthogonal rotation with Iterative Quantisation (Gong & Lazebnik 2011)
so that ``sign`` loses as little as possible. ``codes`` returns packed bits (``n_bits / 8``
bytes per vector, ``np.packbits`` big-endian bit order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import InvalidInput


class BinaryCoder:
    """``sign((x - mean) @ projection)`` packed into bytes."""

    def __init__(self, mean: np.ndarray, projection: np.ndarray) -> None:
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        projection = np.asarray(projection, dtype=np.float32)
        if projection.ndim != 2 or projection.shape[0] != mean.shape[0]:
            raise InvalidInput(
                "projection must be (dim, n_bits) matching mean",
                mean=list(mean.shape),
                projection=list(projection.shape),
            )
        if projection.shape[1] % 8 != 0:
            raise InvalidInput("n_bits must be a multiple of 8", n_bits=projection.shape[1])
        self.mean = mean
        self.projection = projection

    @property
    def dim(self) -> int:
        return int(self.projection.shape[0])

    @property
    def n_bits(self) -> int:
        return int(self.projection.shape[1])

    @property
    def n_bytes(self) -> int:
        return self.n_bits // 8

    @classmethod
    def fit(
        cls, vectors: np.ndarray, n_bits: int = 256, *, n_iter: int = 50, seed: int = 0
    ) -> BinaryCoder:
        """Learn PCA (top ``n_bits`` directions) + ITQ rotation on ``vectors`` (N, dim)."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise InvalidInput("need a 2-d array of at least 2 training vectors")
        dim = x.shape[1]
        if n_bits <= 0 or n_bits % 8 != 0 or n_bits > dim:
            raise InvalidInput(
                f"n_bits must be a positive multiple of 8 and at most the vector dim ({dim})",
                n_bits=n_bits,
                dim=dim,
            )
        mean = x.mean(axis=0)
        xc = x - mean
        # Principal directions (columns) sorted by variance.
        _, _, vt = np.linalg.svd(xc, full_matrices=False)  # (min(N, dim), dim)
        if vt.shape[0] < n_bits:
            # a small catalog (fewer vectors than bits): complete the basis with directions
            # orthogonal to the data's (they carry no variance; the ITQ rotation below spreads
            # the real ones over every bit)
            rng0 = np.random.default_rng(seed)
            extra = rng0.standard_normal((dim, dim))
            extra -= vt.T @ (vt @ extra)
            q, _ = np.linalg.qr(extra)
            vt = np.concatenate([vt, q[:, : n_bits - vt.shape[0]].T])
        pca = vt[:n_bits].T  # (dim, n_bits)
        v = xc @ pca
        rng = np.random.default_rng(seed)
        rot, _ = np.linalg.qr(rng.standard_normal((n_bits, n_bits)))
        for _ in range(n_iter):
            b = np.where(v @ rot >= 0, 1.0, -1.0)
            u, _, wt = np.linalg.svd(v.T @ b)
            rot = u @ wt
        return cls(mean.astype(np.float32), (pca @ rot).astype(np.float32))

    def signs(self, vectors: np.ndarray) -> np.ndarray:
        """(N, n_bits) bool: the unpacked bits."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != self.dim:
            raise InvalidInput(
                f"vectors have dim {x.shape[1]}, the coder expects {self.dim}",
                got=int(x.shape[1]),
                expected=self.dim,
            )
        return (x - self.mean) @ self.projection >= 0

    def codes(self, vectors: np.ndarray) -> np.ndarray:
        """(N, n_bits / 8) uint8 packed codes."""
        return np.packbits(self.signs(vectors), axis=1)

    def to_state(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "projection": self.projection.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BinaryCoder:
        return cls(np.asarray(state["mean"]), np.asarray(state["projection"]))


def hamming_distances(queries: np.ndarray, codes: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """(M, N) int32 Hamming distances between packed codes (M, B) and (N, B)."""
    q = np.atleast_2d(np.asarray(queries, dtype=np.uint8))
    db = np.atleast_2d(np.asarray(codes, dtype=np.uint8))
    if q.shape[1] != db.shape[1]:
        raise InvalidInput("code lengths differ", queries=int(q.shape[1]), codes=int(db.shape[1]))
    out = np.empty((q.shape[0], db.shape[0]), dtype=np.int32)
    for start in range(0, q.shape[0], chunk):
        x = np.bitwise_xor(q[start : start + chunk, None, :], db[None, :, :])
        out[start : start + chunk] = np.bitwise_count(x).sum(axis=2, dtype=np.int32)
    return out


def hamming_top_k(queries: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """(M, min(k, N)) indices of the nearest codes by Hamming distance (ties by index)."""
    d = hamming_distances(queries, codes)
    k = min(k, d.shape[1])
    if k <= 0:
        return np.zeros((d.shape[0], 0), dtype=np.int64)
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    rows = np.arange(d.shape[0])[:, None]
    order = np.lexsort((part, d[rows, part]), axis=1)
    return part[rows, order]
