"""Scale benchmark: ``python -m evaluation.bench_scale --sizes 100000 [--features DIR]``.

Database: N unit vectors drawn around the real joint image embeddings of the development
catalog (computed from the cached image features with the shipped joint model) plus noise scaled
to the real per-dimension spread (:mod:`evaluation.scale_math`). Queries: held-out real vectors,
perturbed with another seed; ground truth: the exact top-10 by brute-force numpy.

Three indices on the configured node, one per variant, loaded with the client's bulk helper
(``refresh_interval: -1``), refreshed, force-merged to one segment (each timed apart):

* ``float``: the products mapping's image vector (Lucene HNSW, cosine, m 16, ef_construction 128),
  queried with :func:`engine.queries.image_search_body` (k 100);
* ``byte``: the same HNSW on ``data_type: byte`` vectors quantised client-side (one global scale);
* ``binary``: the products mapping's ``binary_code`` (Lucene HNSW, Hamming) next to the float
  vector, queried with :func:`engine.queries.coarse_image_search_body`: a Hamming k-NN of 1% / 2%
  of N, then an exact cosine ``rescore`` of that shortlist by the k-NN ``knn_score`` script.

Reported per variant: bytes per vector (index files on disk by type, the node's store and
segment stats, the k-NN plugin's native graph memory) and the theory, index times, query p50/p99
(client wall time and the node's ``took``), recall@10 vs exact, and the load average around each
phase. The numpy control (exact Hamming shortlist + re-rank) is printed for the model's PCA+ITQ
codes and for random codes at the same shortlists. JSON on stdout (``--out`` writes it too).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from opensearchpy import helpers
from tqdm import tqdm

from engine.backend import Backend
from engine.cli import CommandParser, setup_logging
from engine.models.joint import JointModel
from engine.queries import BINARY_FIELD, IMAGE_FIELD, coarse_image_search_body, image_search_body
from engine.queries import signed_bytes as signed_code
from engine.settings import load_settings
from engine.train.features import DEFAULT_CACHE_DIR
from evaluation import scale_math as S
from evaluation.metrics import latency_summary

logger = logging.getLogger(__name__)

HNSW = {"name": "hnsw", "engine": "lucene", "parameters": {"m": 16, "ef_construction": 128}}
VARIANTS = ("float", "byte", "binary")
FLOAT_IN_BINARY = ":float-field"  # query tag: the float k-NN query on the binary index


def load_real(features_dir: Path, model: JointModel) -> np.ndarray:
    """Unique real joint image embeddings from every cached ``img224_*.npz`` of ``features_dir``."""
    feats, seen = [], set()
    for path in sorted(features_dir.glob("img224_*.npz")):
        with np.load(path, allow_pickle=False) as z:
            keys, f = z["keys"], z["feats"]
        keep = [i for i, k in enumerate(keys) if (path.name, str(k)) not in seen]
        seen.update((path.name, str(k)) for k in keys)
        feats.append(f[keep])
    if not feats:
        raise SystemExit(f"no cached image features (img224_*.npz) in {features_dir}")
    emb = model.embed_image_features(np.concatenate(feats))
    _, unique = np.unique(np.round(emb, 5), axis=0, return_index=True)
    return emb[np.sort(unique)]


def mapping(variant: str, dim: int, n_bits: int, rescore_window: int) -> dict[str, Any]:
    index: dict[str, Any] = {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}
    float_field = {"type": "knn_vector", "dimension": dim, "space_type": "cosinesimil"}
    props: dict[str, Any] = {IMAGE_FIELD: {**float_field, "method": HNSW}}
    if variant == "byte":
        props[IMAGE_FIELD]["data_type"] = "byte"
    elif variant == "binary":
        index["max_rescore_window"] = max(10000, rescore_window)
        props[BINARY_FIELD] = {
            "type": "knn_vector",
            "dimension": n_bits,
            "data_type": "binary",
            "space_type": "hamming",
            "method": HNSW,
        }
    return {"settings": {"index": index}, "mappings": {"dynamic": "strict", "properties": props}}


def theory_bytes(variant: str, dim: int, n_bits: int, m: int = 16) -> dict[str, float]:
    """Vector bytes + HNSW layer-0 links (2m int32 neighbours; upper layers add ~1/m more)."""
    links = 2 * m * 4 * (1 + 1 / m)
    vec = {"float": 4 * dim, "byte": dim, "binary": n_bits / 8}[variant]
    out = {"vector": float(vec), "graph": links, "hot": vec + links}
    if variant == "binary":
        out["rerank_floats"] = 4.0 * dim
    return out


def _actions(index: str, variant: str, db: np.ndarray, extra: np.ndarray | None):
    for i in range(len(db)):
        doc: dict[str, Any] = {IMAGE_FIELD: db[i].tolist()}
        if variant == "binary" and extra is not None:
            doc[BINARY_FIELD] = signed_code(extra[i])
        yield {"_index": index, "_id": str(i), "_source": doc}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def index_files(data_path: str, uuid: str) -> dict[str, int]:
    """Bytes of the index's files grouped by name without the segment prefix (``.vec`` float or
    byte vectors, ``.vex`` HNSW graph, ``.dvd`` doc values, ``.fdt`` stored source, ...)."""
    out: dict[str, int] = {}
    for root, _, files in os.walk(Path(data_path) / "indices" / uuid):
        for f in files:
            if f.startswith("_") and "." in f:
                key = f.split("_", 2)[-1] if f.count("_") >= 2 else f.rsplit(".", 1)[-1]
                out[key] = out.get(key, 0) + os.path.getsize(Path(root) / f)
    return dict(sorted(out.items()))


def node_memory(backend: Backend, index: str) -> dict[str, Any]:
    c = backend.client
    st = c.indices.stats(index=index, metric="store,segments")["indices"][index]["primaries"]
    knn = c.transport.perform_request("GET", "/_plugins/_knn/stats")
    graph = sum(n.get("graph_memory_usage", 0) for n in knn.get("nodes", {}).values())
    segs = c.cat.segments(index=index, format="json", bytes="b")
    fs = c.nodes.stats(metric="fs")["nodes"]
    data_path = next(iter(fs.values()))["fs"]["data"][0]["path"]
    uuid = c.indices.get_settings(index=index)[index]["settings"]["index"]["uuid"]
    files: dict[str, int] = {}
    try:
        files = index_files(data_path, uuid)
    except OSError as exc:  # a remote node: no files to read
        logger.warning("cannot read the index files: %s", exc)
    return {
        "store_bytes": int(st["store"]["size_in_bytes"]),
        "segments": len(segs),
        "segments_memory_bytes": int(st["segments"].get("memory_in_bytes", 0)),
        "knn_graph_memory_usage_kb": int(graph),
        "files": files,
    }


def build(backend: Backend, index: str, variant: str, db, extra, chunk: int) -> dict[str, Any]:
    c = backend.client
    t: dict[str, Any] = {"load_before": _load()}
    start = time.perf_counter()
    ok = 0
    with backend.refresh_interval(index, "-1"):
        bar = tqdm(total=len(db), desc=f"bulk {index}", unit="doc", mininterval=5)
        for good, _ in helpers.parallel_bulk(
            c, _actions(index, variant, db, extra), thread_count=2, chunk_size=chunk
        ):
            ok += bool(good)
            bar.update(1)
        bar.close()
    t["bulk_s"] = time.perf_counter() - start
    t["load_after_bulk"] = _load()
    start = time.perf_counter()
    backend.refresh(index)
    t["refresh_s"] = time.perf_counter() - start
    start = time.perf_counter()
    c.indices.forcemerge(index=index, max_num_segments=1, request_timeout=3600)
    t["force_merge_s"] = time.perf_counter() - start
    backend.refresh(index)  # drops the merged-away segments' files
    t["load_after_merge"] = _load()
    t["total_s"] = t["bulk_s"] + t["refresh_s"] + t["force_merge_s"]
    t["docs"] = backend.count(index)
    if ok != len(db) or t["docs"] != len(db):
        raise SystemExit(f"{index}: {ok} bulk successes, {t['docs']} docs, {len(db)} expected")
    return t


def query(backend: Backend, index: str, bodies: list[dict], warmup: int) -> dict[str, Any]:
    for b in bodies[:warmup]:
        backend.search(index, b)
    wall, took, found = [], [], []
    load0 = _load()
    for b in tqdm(bodies, desc=f"query {index}", mininterval=5):
        start = time.perf_counter()
        res = backend.search(index, b)
        wall.append(1000 * (time.perf_counter() - start))
        took.append(float(res["took"]))
        found.append([int(h["_id"]) for h in res["hits"]["hits"]])
    return {
        "wall": latency_summary(wall),
        "took": latency_summary(took),
        "load": [load0, _load()],
        "found": found,
    }


def bodies_for(variant: str, queries, q_codes, byte_scale: float, shortlist: int) -> list[dict]:
    if variant == "float":
        return [image_search_body(q, k=100, size=10, source=None) for q in queries]
    if variant == "byte":
        qb = S.byte_quantise(queries, byte_scale).astype(np.int32)
        return [image_search_body(q, k=100, size=10, source=None) for q in qb]
    return [
        coarse_image_search_body(c, q, coarse_k=shortlist, size=10, source=None)
        for c, q in zip(q_codes, queries, strict=True)
    ]


def numpy_control(queries, db, exact, model: JointModel, shortlists, seed: int) -> dict:
    """Exact-Hamming shortlist + exact re-rank in numpy: the model's codes and random ones."""
    assert model.binary is not None
    n_bits = model.binary.n_bits
    coders = {
        "itq": model.binary,
        "random": S.random_coder(model.dim, n_bits, seed),
        "random_centred": S.random_coder(model.dim, n_bits, seed, mean=model.binary.mean),
    }
    out: dict[str, Any] = {}
    for name, coder in coders.items():
        res = S.coarse_rerank_top_k(queries, db, coder.codes(queries), coder.codes(db), shortlists)
        out[name] = {
            str(s): {
                "rerank_recall_at_10": round(S.recall_at_k(r, exact), 4),
                "hamming_only_recall_at_10": round(S.recall_at_k(h, exact), 4),
            }
            for s, (r, h) in res.items()
        }
        logger.info("numpy control %s: %s", name, out[name])
    return out


def run_size(backend, model, base, held, scale, n: int, args) -> dict[str, Any]:
    logger.info("N=%d: generating vectors", n)
    db = S.perturb(base, n, args.noise, scale, seed=args.seed + 1)
    queries = S.perturb(held, args.queries, args.noise, scale, seed=args.seed + 2)
    exact = S.exact_top_k(queries, db, 10)
    top1 = np.einsum("qd,qd->q", queries, db[exact[:, 0]])
    out: dict[str, Any] = {
        "n": n,
        "queries": len(queries),
        "exact_top1_cos_mean": float(top1.mean()),
        "exact_top10_cos_mean": float(np.einsum("qd,qkd->qk", queries, db[exact]).mean()),
    }
    codes, q_codes = model.codes(db), model.codes(queries)
    control = sorted({S.shortlist_size(n, f) for f in args.fractions} | set(args.control))
    out["numpy_control"] = numpy_control(queries, db, exact, model, control, args.seed)
    byte_scale = S.fit_byte_scale(db[: min(len(db), 100_000)])
    out["byte_scale"] = byte_scale
    shortlists = [S.shortlist_size(n, f) for f in args.fractions]
    n_bits = model.binary.n_bits if model.binary else 256
    out["variants"] = {}
    for variant in args.variants:
        index = f"{args.prefix}-{variant}-{n}"
        if backend.index_exists(index):
            backend.delete_index(index)
        backend.create_index(index, mapping(variant, model.dim, n_bits, max(shortlists)))
        v: dict[str, Any] = {
            "index": index,
            "theory_bytes": theory_bytes(variant, model.dim, n_bits),
        }
        if variant == "binary":
            v["theory_bytes_float_field"] = theory_bytes("float", model.dim, n_bits)
        try:
            vec = S.byte_quantise(db, byte_scale) if variant == "byte" else db
            v["index_time"] = build(backend, index, variant, vec, codes, args.chunk)
            v["memory"] = node_memory(backend, index)
            v["memory"]["store_bytes_per_vector"] = v["memory"]["store_bytes"] / n
            v["memory"]["vector_bytes_per_vector"] = S.measured_bytes(v["memory"]["files"], n)
            runs = (
                [("", variant, 0)]
                if variant != "binary"
                else [
                    (f"@{f:g}", variant, s) for f, s in zip(args.fractions, shortlists, strict=True)
                ]
                # the binary index holds the products mapping's float HNSW field too: searched
                # with the float query it gives float HNSW at this size without another build
                + [(FLOAT_IN_BINARY, "float", 0)]
            )
            for tag, body_variant, s in runs:
                if variant == "binary" and s > 10000:
                    v[f"query{tag}"] = {"skipped": f"shortlist {s} > k limit 10000 per shard"}
                    continue
                q = query(
                    backend,
                    index,
                    bodies_for(body_variant, queries, q_codes, byte_scale, s),
                    args.warmup,
                )
                q["recall_at_10"] = S.recall_at_k(q.pop("found"), exact)
                q["shortlist"] = s
                v[f"query{tag}"] = q
                logger.info(
                    "%s%s: recall@10 %.4f p50 %.1f ms",
                    index,
                    tag,
                    q["recall_at_10"],
                    q["wall"]["p50_ms"],
                )
        finally:
            if not args.keep:
                backend.delete_index(index)
        out["variants"][variant] = v
    return out


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (variant, shortlist) of a size's result: the docs/SCALE.md table."""
    rows = []
    for variant, v in result["variants"].items():
        for key, q in v.items():
            if not key.startswith("query") or "wall" not in q:
                continue
            t = v["index_time"]
            theory = v[
                "theory_bytes_float_field" if key.endswith(FLOAT_IN_BINARY) else "theory_bytes"
            ]
            rows.append(
                {
                    "variant": variant + key[len("query") :],
                    "n": result["n"],
                    "store_B_per_vec": round(v["memory"]["store_bytes_per_vector"], 1),
                    "hot_B_per_vec_theory": round(theory["hot"], 1),
                    "bulk_s": round(t["bulk_s"], 1),
                    "refresh_s": round(t["refresh_s"], 1),
                    "merge_s": round(t["force_merge_s"], 1),
                    "p50_ms": round(q["wall"]["p50_ms"], 1),
                    "p99_ms": round(q["wall"]["p99_ms"], 1),
                    "took_p50_ms": round(q["took"]["p50_ms"], 1),
                    "recall_at_10": round(q["recall_at_10"], 4),
                    "load": q["load"][0],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m evaluation.bench_scale", __doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.02])
    parser.add_argument(
        "--control",
        type=int,
        nargs="+",
        default=[100, 200, 500, 1000, 2000, 5000],
        help="absolute shortlists of the numpy control (besides the fractions)",
    )
    parser.add_argument("--features", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--queries", type=int, default=250)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.5, help="x the real per-dim spread")
    parser.add_argument("--chunk", type=int, default=500, help="documents per bulk request")
    parser.add_argument("--prefix", default="bench-scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the indices")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--project-from", type=Path, default=None, help="print the projection of a saved report"
    )
    parser.add_argument("--ram-gb", type=float, default=64.0, help="per node, for the projection")
    parser.add_argument("--replicas", type=int, default=1, help="for the projection")
    args = parser.parse_args(argv)
    setup_logging(args)
    if args.project_from is not None:
        saved = json.loads(args.project_from.read_text())["sizes"][-1]
        node = S.NodeSpec(ram_gb=args.ram_gb)
        rows = S.projections(saved, node=node, replicas=args.replicas, fractions=args.fractions)
        print(json.dumps({"from_n": saved["n"], "node": vars(node), "rows": rows}, indent=2))
        return 0
    settings = load_settings()
    ms = settings.models
    model = JointModel.load(ms.joint_path, ms.device, num_threads=ms.num_threads)
    if model.binary is None:
        raise SystemExit("the joint checkpoint has no binary coder")
    real = load_real(args.features, model)
    base, held = S.split_real(real, args.queries, args.seed)
    scale = S.spread(base)
    sims = real @ real.T
    np.fill_diagonal(sims, -1.0)
    nn = -np.sort(-sims, axis=1)[:, :10]
    del sims
    backend = Backend.from_settings(settings)
    report: dict[str, Any] = {
        "data": f"{len(real)} real joint image embeddings ({args.features}) + noise "
        f"{args.noise} x per-dim spread, renormalised; queries around {len(held)} held-out",
        "real_nn1_cos_mean": float(nn[:, 0].mean()),
        "real_nn10_cos_mean": float(nn[:, 9].mean()),
        "cpus": os.cpu_count(),
        "node": backend.info().get("version", {}).get("number"),
        "sizes": [],
    }
    for n in args.sizes:
        res = run_size(backend, model, base, held, scale, n, args)
        res["table"] = summary_rows(res)
        report["sizes"].append(res)
        text = json.dumps(report, indent=2)
        if args.out:
            args.out.write_text(text + "\n")
        for row in res["table"]:
            logger.info("%s", row)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
