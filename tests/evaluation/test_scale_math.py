"""The pure parts of ``evaluation.bench_scale``: vector generation, ground truth, recall, byte
quantisation, the numpy coarse pass and the projection arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation import scale_math as S
from evaluation.bench_scale import mapping, theory_bytes


def _unit(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_split_real_is_a_partition() -> None:
    real = _unit(50)
    base, held = S.split_real(real, 7, seed=3)
    assert base.shape == (43, 16) and held.shape == (7, 16)
    rows = {tuple(r) for r in np.concatenate([base, held])}
    assert rows == {tuple(r) for r in real}
    with pytest.raises(ValueError):
        S.split_real(real, 0)


def test_perturb_unit_norm_deterministic_and_scaled() -> None:
    base = _unit(20)
    scale = S.spread(base)
    a = S.perturb(base, 1000, 0.3, scale, seed=1, chunk=128)
    b = S.perturb(base, 1000, 0.3, scale, seed=1, chunk=128)
    assert a.shape == (1000, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # zero noise: every row is one of the base rows
    c = S.perturb(base, 50, 0.0, scale, seed=2, decimals=None)
    assert (np.abs(c @ base.T - 1.0) < 1e-5).any(axis=1).all()
    # more noise: further from the nearest base row
    near = lambda x: float((x @ base.T).max(axis=1).mean())  # noqa: E731
    assert near(S.perturb(base, 500, 0.2, scale, 3)) > near(S.perturb(base, 500, 1.0, scale, 3))


def test_exact_top_k_matches_full_sort_across_chunks() -> None:
    db, q = _unit(300, seed=1), _unit(9, seed=2)
    got = S.exact_top_k(q, db, 10, chunk=37)
    want = np.argsort(-(q @ db.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(got, want)


def test_recall_at_k() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert S.recall_at_k([[1, 2, 9, 9], [5, 6, 7, 8]], exact, k=4) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        S.recall_at_k([[1]], exact, k=4)


def test_byte_quantise_keeps_cosine_ranking() -> None:
    db, q = _unit(400, 32, 1), _unit(5, 32, 2)
    scale = S.fit_byte_scale(db)
    qb = S.byte_quantise(db, scale)
    assert qb.dtype == np.int8 and qb.max() <= 127 and qb.min() >= -128
    cos = lambda a, b: (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))  # noqa: E731
    approx = cos(S.byte_quantise(q, scale).astype(np.float32), qb.astype(np.float32))
    exact = np.argsort(-(q @ db.T), axis=1)[:, :10]
    found = np.argsort(-approx, axis=1)[:, :10]
    assert S.recall_at_k(found, exact) >= 0.9


def test_coarse_rerank_full_shortlist_is_exact_and_codes_help() -> None:
    db, q = _unit(500, 32, 1), _unit(8, 32, 2)
    exact = S.exact_top_k(q, db, 10)
    coder = S.random_coder(32, 32, seed=0)
    out = S.coarse_rerank_top_k(q, db, coder.codes(q), coder.codes(db), [20, 500])
    assert set(out) == {20, 500}
    np.testing.assert_array_equal(out[500][0], exact)  # whole database: exact re-rank
    assert S.recall_at_k(out[20][0], exact) >= S.recall_at_k(out[20][1], exact)


def test_shortlist_size() -> None:
    assert S.shortlist_size(100_000, 0.01) == 1000
    assert S.shortlist_size(500, 0.01) == 10  # at least k
    assert S.shortlist_size(5, 0.5, k=10) == 5  # at most n
    with pytest.raises(ValueError):
        S.shortlist_size(10, 0.0)


def test_project_arithmetic() -> None:
    node = S.NodeSpec(ram_gb=64, heap_gb=16, os_gb=4, fill=0.5)  # 22 GiB of cache
    p = S.project(10_000_000, 1100.0, 6000.0, replicas=1, node=node, max_shard_docs=5_000_000)
    hot = 10_000_000 * 1100.0 * 2
    assert p["primaries"] == 2 and p["shards"] == 4
    assert p["nodes_by_ram"] == math.ceil(hot / (22 * 2**30))
    assert p["nodes"] == max(p["nodes_by_ram"], 2)
    assert p["hot_gb_total"] == pytest.approx(hot / 2**30)
    tiny = S.project(1000, 100.0, 100.0, replicas=2, node=node)
    assert tiny["nodes"] == 3  # one copy per node
    with pytest.raises(ValueError):
        S.project(0, 1.0, 1.0)


def test_mappings_and_byte_accounting() -> None:
    f = mapping("float", 256, 256, 1000)["mappings"]["properties"]
    assert f["image_embedding"]["method"]["engine"] == "lucene"
    b = mapping("byte", 256, 256, 1000)["mappings"]["properties"]
    assert b["image_embedding"]["data_type"] == "byte"
    m = mapping("binary", 256, 256, 20000)
    assert m["mappings"]["properties"]["binary_code"]["data_type"] == "binary"
    assert m["settings"]["index"]["max_rescore_window"] == 20000
    assert theory_bytes("binary", 256, 256)["vector"] == 32
    files = {
        "Lucene99HnswVectorsFormat_0.vec": 2048,
        "KNN990HnswBinaryVectorsFormat_0.vex": 100,
        "Lucene90_0.dvd": 2000,
        "fdt": 10,
        "tim": 5,
    }
    got = S.measured_bytes(files, 2)
    assert got == {
        "binary_vex": 50.0,
        "doc_values": 1000.0,
        "hnsw_vec": 1024.0,
        "stored_source": 5.0,
    }


def test_hot_bytes_and_projections() -> None:
    def variant(b: dict[str, float]) -> dict:
        return {"memory": {"vector_bytes_per_vector": b, "store_bytes_per_vector": 6000.0}}

    result = {
        "variants": {
            "float": variant({"hnsw_vec": 1024.0, "hnsw_vex": 40.0, "doc_values": 1026.0}),
            "binary": variant(
                {"binary_vec": 32.0, "binary_vex": 48.0, "doc_values": 1058.0, "hnsw_vec": 1024.0}
            ),
        }
    }
    hot = S.hot_bytes(result["variants"])
    assert hot == {"float": 1064.0, "binary_ssd_rerank": 80.0, "binary_ram_rerank": 1138.0}
    rows = S.projections(result, targets=(10_000_000,), fractions=(0.02,), k_limit=10_000)
    by = {r["variant"]: r for r in rows}
    assert by["float"]["primaries"] == 2  # 5M docs per shard
    assert by["binary_ssd_rerank@0.02"]["primaries"] == 20  # 10,000 / 2% = 500k per shard
    assert by["binary_ssd_rerank@0.02"]["rerank_floats_per_query"] == 200_000
