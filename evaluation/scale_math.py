"""Pure parts of ``python -m evaluation.bench_scale``: synthetic-at-scale vectors drawn from the
real catalog distribution, exact ground truth, recall, client-side byte quantisation, the
numpy coarse-pass control and the shards/replicas/nodes projection arithmetic (no I/O).

Vectors: each row is a real catalog vector plus Gaussian noise whose per-dimension standard
deviation is ``noise`` times the real vectors' own per-dimension spread, renormalised to unit
length (the engine's image vectors are unit length, compared by cosine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.models.binary import BinaryCoder, hamming_distances
from evaluation.metrics import approx_recall


def split_real(real: np.ndarray, n_held: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(base, held-out) rows of ``real``: queries are drawn around the held-out ones only."""
    x = np.asarray(real, dtype=np.float32)
    if not 0 < n_held < len(x):
        raise ValueError(f"n_held must be in (0, {len(x)}), got {n_held}")
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order[n_held:]], x[order[:n_held]]


def spread(real: np.ndarray) -> np.ndarray:
    """(dim,) per-dimension standard deviation of the real vectors (the noise's unit)."""
    return np.asarray(real, dtype=np.float64).std(axis=0).astype(np.float32)


def perturb(
    base: np.ndarray,
    n: int,
    noise: float,
    scale: np.ndarray,
    seed: int,
    *,
    chunk: int = 65536,
    decimals: int | None = 6,
) -> np.ndarray:
    """(n, dim) unit vectors: a base row drawn uniformly (with replacement) plus
    ``N(0, (noise * scale)^2)`` per dimension, renormalised; rounded to ``decimals`` (what the
    JSON bulk carries, so that the ground truth is computed on the indexed values)."""
    b = np.asarray(base, dtype=np.float32)
    if n < 0 or noise < 0:
        raise ValueError("n and noise must be >= 0")
    sigma = (float(noise) * np.asarray(scale, dtype=np.float32)).reshape(1, -1)
    rng = np.random.default_rng(seed)
    out = np.empty((n, b.shape[1]), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rows = b[rng.integers(0, len(b), m)]
        x = rows + rng.standard_normal((m, b.shape[1]), dtype=np.float32) * sigma
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out[start : start + m] = x
    if decimals is not None:
        np.round(out, decimals, out=out)
    return out


def exact_top_k(
    queries: np.ndarray, db: np.ndarray, k: int = 10, *, chunk: int = 131072
) -> np.ndarray:
    """(M, k) indices of the ``k`` largest inner products (cosine on unit vectors), best first,
    by brute force over ``db`` in chunks (ties: lower index first)."""
    q = np.asarray(queries, dtype=np.float32)
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(db), chunk):
        s = q @ np.asarray(db[start : start + chunk], dtype=np.float32).T
        idx = np.arange(start, start + s.shape[1], dtype=np.int64)
        cat_s = np.concatenate([best_s, s], axis=1)
        cat_i = np.concatenate([best_i, np.broadcast_to(idx, s.shape)], axis=1)
        kk = min(k, cat_s.shape[1])
        part = np.argpartition(-cat_s, kk - 1, axis=1)[:, :kk]
        best_s = np.take_along_axis(cat_s, part, axis=1)
        best_i = np.take_along_axis(cat_i, part, axis=1)
    order = np.lexsort((best_i, -best_s), axis=1)
    return np.take_along_axis(best_i, order, axis=1)


def recall_at_k(found: Sequence[Sequence[int]], exact: np.ndarray, k: int = 10) -> float:
    """Mean recall@k of the found id lists against the exact top-k rows."""
    if len(found) != len(exact):
        raise ValueError("one found list per exact row")
    if len(found) == 0:
        raise ValueError("no queries")
    return float(
        np.mean([approx_recall(list(f), list(e), k) for f, e in zip(found, exact, strict=True)])
    )


def fit_byte_scale(x: np.ndarray, quantile: float = 0.9999) -> float:
    """One global scale for int8 quantisation: ``127 / q``, ``q`` the ``quantile`` of |x| (one
    scale for every dimension keeps cosine ranking faithful; per-dimension scales would
    reweight the dimensions)."""
    q = float(np.quantile(np.abs(np.asarray(x, dtype=np.float32)), quantile))
    if q <= 0:
        raise ValueError("all-zero vectors")
    return 127.0 / q


def byte_quantise(x: np.ndarray, scale: float) -> np.ndarray:
    """int8 codes ``clip(round(x * scale), -128, 127)``."""
    y = np.rint(np.asarray(x, dtype=np.float32) * float(scale))
    return np.clip(y, -128, 127).astype(np.int8)


def random_coder(dim: int, n_bits: int, seed: int, mean: np.ndarray | None = None) -> BinaryCoder:
    """Random-projection codes (the control): ``mean=None`` is the project's existing baseline
    (no centring, as in ``evaluation.tasks.binary``); a mean gives centred random projections."""
    rng = np.random.default_rng(seed)
    m = np.zeros(dim, np.float32) if mean is None else np.asarray(mean, np.float32)
    return BinaryCoder(m, rng.standard_normal((dim, n_bits)).astype(np.float32))


def shortlist_size(n: int, fraction: float, k: int = 10) -> int:
    """``ceil(fraction * n)``, at least ``k``, at most ``n``."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    return int(min(n, max(k, math.ceil(fraction * n))))


def coarse_rerank_top_k(
    queries: np.ndarray,
    db: np.ndarray,
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    shortlists: Sequence[int],
    k: int = 10,
    *,
    chunk: int = 4,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per shortlist size ``s``: the exact-Hamming top ``s`` codes of each query re-ranked by
    exact cosine, as (re-ranked top-k, Hamming-only top-k) indices (ties in Hamming distance
    at the largest shortlist's boundary fall as ``argpartition`` leaves them; inside, lower index
    first).
    Hamming distances are computed once per query chunk (small (chunk, N, bytes) XOR at 1M)."""
    sizes = sorted({min(int(s), len(db)) for s in shortlists})
    out = {
        s: (np.zeros((len(queries), k), np.int64), np.zeros((len(queries), k), np.int64))
        for s in sizes
    }
    top = sizes[-1]
    for start in range(0, len(queries), chunk):
        d = hamming_distances(query_codes[start : start + chunk], db_codes, chunk=chunk)
        cand = np.argpartition(d, top - 1, axis=1)[:, :top]
        for j, row in enumerate(cand):
            by_ham = row[np.lexsort((row, d[j, row]))]  # Hamming order, ties by index
            for s in sizes:
                short = by_ham[:s]
                sims = db[short] @ queries[start + j]
                out[s][0][start + j] = short[np.lexsort((short, -sims))[:k]]
                out[s][1][start + j] = short[:k]
    return out


# --------------------------------------------------------------------------- projection


@dataclass(frozen=True)
class NodeSpec:
    """One data node: ``ram_gb`` in all, ``heap_gb`` for the JVM, ``os_gb`` for the OS and
    other processes; the rest is page cache, of which ``fill`` may hold the hot vector files
    (Lucene reads vectors and graphs from memory-mapped files: off-heap, in page cache)."""

    ram_gb: float = 64.0
    heap_gb: float = 16.0
    os_gb: float = 4.0
    fill: float = 0.8

    @property
    def cache_bytes(self) -> float:
        return max(0.0, (self.ram_gb - self.heap_gb - self.os_gb) * self.fill) * 2**30


def project(
    n_products: int,
    hot_bytes_per_vector: float,
    disk_bytes_per_vector: float,
    *,
    replicas: int = 1,
    node: NodeSpec = NodeSpec(),
    max_shard_docs: int = 5_000_000,
    disk_per_node_gb: float = 1000.0,
) -> dict[str, float | int]:
    """Shards, replicas and nodes so that every copy's hot vector bytes fit in page cache.

    ``primaries = ceil(n / max_shard_docs)``; copies = primaries x (1 + replicas); nodes = the
    most of: RAM (all copies' hot bytes over one node's cache), disk, and ``1 + replicas``
    (a copy per node). ``shards_per_node`` rounds up."""
    if n_products <= 0 or hot_bytes_per_vector <= 0:
        raise ValueError("n_products and hot_bytes_per_vector must be > 0")
    if replicas < 0 or max_shard_docs <= 0:
        raise ValueError("replicas must be >= 0 and max_shard_docs > 0")
    copies = 1 + replicas
    primaries = math.ceil(n_products / max_shard_docs)
    hot_total = n_products * hot_bytes_per_vector * copies
    disk_total = n_products * disk_bytes_per_vector * copies
    cache = node.cache_bytes
    if cache <= 0:
        raise ValueError("the node has no page cache left for vectors")
    by_ram = math.ceil(hot_total / cache)
    by_disk = math.ceil(disk_total / (disk_per_node_gb * 2**30))
    nodes = max(by_ram, by_disk, copies)
    shards = primaries * copies
    return {
        "n_products": int(n_products),
        "primaries": int(primaries),
        "replicas": int(replicas),
        "shards": int(shards),
        "nodes": int(nodes),
        "nodes_by_ram": int(by_ram),
        "shards_per_node": int(math.ceil(shards / nodes)),
        "hot_gb_total": hot_total / 2**30,
        "hot_gb_per_node": hot_total / nodes / 2**30,
        "disk_gb_total": disk_total / 2**30,
    }


def measured_bytes(files: dict[str, int], n: int) -> dict[str, float]:
    """Bytes per vector of the vector files: ``hnsw_float`` / ``hnsw_binary`` (``.vec`` vectors,
    ``.vex`` graph) and ``doc_values`` (``.dvd``: the k-NN copy the ``knn_score`` re-rank reads)."""
    out: dict[str, float] = {}
    for name, size in files.items():
        fmt, _, ext = name.rpartition(".")
        if fmt.startswith("Lucene99HnswVectorsFormat") and ext in ("vec", "vex"):
            key = f"hnsw_{ext}"
        elif fmt.startswith("KNN990HnswBinaryVectorsFormat") and ext in ("vec", "vex"):
            key = f"binary_{ext}"
        elif ext == "dvd":
            key = "doc_values"
        elif ext == "fdt":
            key = "stored_source"
        else:
            continue
        out[key] = out.get(key, 0.0) + size / n
    return {k: round(v, 1) for k, v in sorted(out.items())}


FLOAT_OF_BINARY = "float_field_of_binary_index"


def hot_bytes(variants: dict[str, dict]) -> dict[str, float]:
    """Bytes per vector a query must find in memory, from each variant's measured file bytes:
    HNSW vectors + graph of the searched field; for ``binary`` twice: re-rank floats read from
    disk (``binary_ssd_rerank``: codes + graph only) or kept in memory (``binary_ram_rerank``:
    + the doc-value floats the ``knn_score`` re-rank reads)."""
    out: dict[str, float] = {}
    for name, v in variants.items():
        b = v["memory"]["vector_bytes_per_vector"]
        if name == "binary":
            codes = b.get("binary_vec", 0.0) + b.get("binary_vex", 0.0)
            out["binary_ssd_rerank"] = codes
            out["binary_ram_rerank"] = codes + b.get("doc_values", 0.0)
            if "float" not in variants and b.get("hnsw_vec"):
                # the binary index's own float HNSW field stands for float HNSW at this size
                out[FLOAT_OF_BINARY] = b["hnsw_vec"] + b.get("hnsw_vex", 0.0)
        else:
            out[name] = b.get("hnsw_vec", 0.0) + b.get("hnsw_vex", 0.0)
    return out


def projections(
    size_result: dict,
    *,
    targets: Sequence[int] = (10_000_000, 100_000_000),
    node: NodeSpec = NodeSpec(),
    replicas: int = 1,
    fractions: Sequence[float] = (0.01, 0.02),
    max_shard_docs: int = 5_000_000,
    k_limit: int = 10_000,
) -> list[dict]:
    """:func:`project` for every variant of one measured size and every target size. Binary
    shards hold at most ``k_limit / fraction`` documents (a shard's coarse k-NN returns at most
    ``k_limit`` codes, and the shortlist is that fraction of the shard); the re-rank reads
    ``shortlist`` floats per query in all."""
    hot = hot_bytes(size_result["variants"])
    rows = []
    for name, b in hot.items():
        variant = "binary" if name.startswith("binary") or name == FLOAT_OF_BINARY else name
        # (for the float field of a binary index: that index's store, an upper bound)
        disk = size_result["variants"][variant]["memory"]["store_bytes_per_vector"]
        shard_limits = (
            [(f"@{f:g}", min(max_shard_docs, int(k_limit / f))) for f in fractions]
            if name.startswith("binary")
            else [("", max_shard_docs)]
        )
        for tag, limit in shard_limits:
            for n in targets:
                p = project(n, b, disk, replicas=replicas, node=node, max_shard_docs=limit)
                row: dict = {"variant": name + tag, "hot_B_per_vec": round(b, 1), **p}
                if tag:
                    row["rerank_floats_per_query"] = int(float(tag[1:]) * n)
                rows.append(row)
    return rows
