"""Where the milliseconds of a search go, per query type, measured in-process.

    python -m evaluation.profile_search --index speed-products-eval-0af122933fdd \\
        --catalog ../shared/data/fashion-product-images/catalog.jsonl.gz \\
        --images ../shared/data/fashion-product-images/images

For ``text`` (hybrid), ``image_by_id`` (more like this), ``image`` (photo upload) and
``compose`` (item + "this but in <colour>"), ``--n`` queries are run through the search service
(the API's own loaders) with a recording backend. Printed per type (medians, ms): the whole
call, the encoder (query text; photo decode and embedding), every cluster round trip (client
wall time and OpenSearch's ``took``) and the rest (our Python). Then every recorded search body
is sent again three ways: as recorded, with ``"profile": true`` (the query phase: Lucene query
time, rewrite and collectors, summed over shards) and with ``"_source": false`` (the difference
is the fetch phase's cost of reading and filtering stored sources). OpenSearch 2.19 does not
profile the fetch phase itself.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.cli import CommandParser, setup_logging
from engine.settings import SAMPLE_DIR, load_settings

logger = logging.getLogger("evaluation.profile_search")

KINDS = ("text", "image_by_id", "image", "compose")


class RecordingBackend:
    """A Backend proxy that records each round trip: (method, index, body, pipeline, ms, took)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name not in ("search", "msearch", "get", "mget", "get_source"):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            out = attr(*args, **kwargs)
            ms = (time.perf_counter() - t) * 1000.0
            responses = out if isinstance(out, list) else [out]
            took = sum(float(r.get("took", 0)) for r in responses if isinstance(r, dict))
            body = args[1] if len(args) > 1 else kwargs.get("body")
            self.calls.append(
                {
                    "method": name,
                    "index": args[0] if args else kwargs.get("index"),
                    "body": body,
                    "pipeline": kwargs.get("search_pipeline"),
                    "ms": ms,
                    "took": took,
                }
            )
            return out

        return timed


def _shard_query_ms(profile: dict[str, Any]) -> dict[str, float]:
    q = r = c = 0.0
    for shard in profile.get("shards", []):
        for s in shard.get("searches", []):
            q += sum(x.get("time_in_nanos", 0) for x in s.get("query", [])) / 1e6
            r += s.get("rewrite_time", 0) / 1e6
            c += sum(x.get("time_in_nanos", 0) for x in s.get("collector", [])) / 1e6
    return {"query": q, "rewrite": r, "collect": c}


def replay(backend: Any, call: dict[str, Any], repeat: int = 3) -> dict[str, float]:
    """took (ms) as recorded, with profile (query phase parts) and without _source."""
    body, index, pipe = call["body"], call["index"], call["pipeline"]

    def took(b: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        best: tuple[float, dict[str, Any]] | None = None
        for _ in range(repeat):
            res = backend.search(index, b, search_pipeline=pipe)
            if best is None or res["took"] < best[0]:
                best = (float(res["took"]), res)
        assert best is not None
        return best

    from engine.errors import ClusterRequestError

    plain, _ = took(body)
    nosrc, _ = took({**body, "_source": False})
    try:
        _, prof = took({**body, "profile": True})
        parts = _shard_query_ms(prof.get("profile", {}))
    except ClusterRequestError:  # neural-search 2.19 cannot profile some hybrid queries
        parts = {"query": float("nan"), "rewrite": float("nan"), "collect": float("nan")}
    return {"took": plain, "no_source_took": nosrc, "fetch_source": plain - nosrc, **parts}


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: round(float(np.median([r[k] for r in rows])), 2) for k in keys}


def profile(
    svc: Any, rec: RecordingBackend, kind: str, items: Sequence[Any]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    from PIL import Image

    from engine.queries import Filters

    rows: list[dict[str, float]] = []
    bodies: list[dict[str, Any]] = []
    for item in items:
        rec.calls.clear()
        t = time.perf_counter()
        encode = 0.0
        if kind == "text":
            e = time.perf_counter()
            svc.embed_text(item)  # new text: embedded here, cached for text_search
            encode = (time.perf_counter() - e) * 1000.0
            svc.text_search(item, size=10)
        elif kind == "image_by_id":
            svc.similar_to_item(item, Filters(), size=10)
        elif kind == "image":
            e = time.perf_counter()
            img = Image.open(io.BytesIO(item)).convert("RGB")
            encode = (time.perf_counter() - e) * 1000.0
            svc.image_search(img, Filters(), size=10)
        else:
            item_id, text = item
            svc.compose_search(item_id=item_id, text=text, size=10)
        total = (time.perf_counter() - t) * 1000.0
        cluster = sum(c["ms"] for c in rec.calls)
        took = sum(c["took"] for c in rec.calls)
        rows.append(
            {
                "total": total,
                "round_trips": float(len(rec.calls)),
                "cluster_wall": cluster,
                "took": took,
                "client_overhead": cluster - took,
                "encode_or_decode": encode,
                "python_rest": total - cluster - encode,
            }
        )
        bodies.extend(c for c in rec.calls if c["method"] == "search")
    return _median(rows), bodies


def _parser() -> argparse.ArgumentParser:
    p = CommandParser("python -m evaluation.profile_search", __doc__)
    p.add_argument("--index", required=True)
    p.add_argument("--catalog", type=Path, default=SAMPLE_DIR / "catalog.jsonl")
    p.add_argument("--images", type=Path, default=SAMPLE_DIR / "images")
    p.add_argument("--n", type=int, default=30, help="queries per type")
    p.add_argument("--types", default=",".join(KINDS))
    p.add_argument("--seed", type=int, default=3)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args)
    settings = load_settings()
    from engine.api.app import default_loaders
    from engine.catalog import load_catalog
    from engine.engines import connect
    from engine.search.service import SearchService
    from evaluation.load_search import build_requests

    rec = RecordingBackend(connect(settings))
    model = default_loaders(settings)["joint"]()
    svc = SearchService.from_settings(settings, rec, model, index=args.index)  # type: ignore[arg-type]
    reqs = build_requests(load_catalog(args.catalog), args.images, args.n + 3, args.seed)
    items: dict[str, list[Any]] = {
        "text": [r.json["query"] for r in reqs["text"] if r.json],
        "image_by_id": [r.json["item_id"] for r in reqs["image_by_id"] if r.json],
        "image": [r.files["file"][1] for r in reqs["image"] if r.files],
        "compose": [(r.json["item_id"], r.json["text"]) for r in reqs["compose"] if r.json],
    }
    print(f"index {args.index}, {args.n} queries per type")
    for kind in [k.strip() for k in args.types.split(",") if k.strip()]:
        profile(svc, rec, kind, items[kind][:3])  # warm-up
        stages, bodies = profile(svc, rec, kind, items[kind][3:])
        print(f"\n{kind}: " + "  ".join(f"{k}={v}" for k, v in stages.items()))
        by_shape: dict[str, list[dict[str, float]]] = {}
        for call in bodies:
            shape = _shape(call["body"])
            by_shape.setdefault(shape, []).append(replay(rec._backend, call))
        for shape, vals in by_shape.items():
            med = _median(vals)
            print(f"  {shape} (n={len(vals)}): " + "  ".join(f"{k}={v}" for k, v in med.items()))
    return 0


def _shape(body: dict[str, Any]) -> str:
    q = body.get("query", {})
    kind = next(iter(q), "?")
    size = body.get("size")
    if kind == "hybrid":
        return f"hybrid(size={size}, depth={q['hybrid'].get('pagination_depth')})"
    return f"{kind}(size={size})"


if __name__ == "__main__":
    raise SystemExit(main())
