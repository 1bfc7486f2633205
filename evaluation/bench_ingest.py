"""Ingest throughput benchmark: ``python -m evaluation.bench_ingest [--set a|b|both]``.

(a) the 9,583 photographed products of the shared set (224x224 photos, ``images/``);
(b) all 44,441 catalog rows with the 60x80 photos of ``images_60x80.tar.gz`` (extracted once
    to ``.cache/images_60x80/``; rows without a photo are indexed text-only).

Each run ingests into a throw-away index (``<prefix>-products-bench-<random>``, so the products
template applies), prints the ingest summary (end-to-end items/s, per-stage rates, peak RSS)
plus the load average before and after (other jobs on the machine slow it down), writes the
numbers to ``.cache/bench_ingest/<set>.json`` and deletes the index.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from engine.backend import Backend
from engine.cli import CommandParser, setup_logging
from engine.config.desired import desired_objects
from engine.config.installer import apply
from engine.engines import connect
from engine.settings import PROJECT_ROOT, Settings, load_settings
from ingest.encode import JointEncoder
from ingest.pipeline import PipelineOptions, ingest_products

logger = logging.getLogger(__name__)

CACHE = PROJECT_ROOT / ".cache"
BENCH_DIR = CACHE / "bench_ingest"


class HashEncoder:
    """Profiling stand-in for the model (``--no-model``): crop + colour as the real encoder,
    then vectors from a hash; measures what the pipeline costs besides the backbones."""

    dim = 256
    model_version = "hash-encoder"
    runtime = "no model (hash vectors)"

    def text_for(self, product: Any) -> str:
        from engine.models.joint import text_for_product

        return text_for_product(product)

    def prepare_image(self, image: Any) -> Any:
        from engine.models.features import crop_and_colour
        from ingest.encode import PreparedImage

        crop, colour = crop_and_colour(image)
        return PreparedImage(crop, colour)

    def _vectors(self, keys: list[bytes]) -> Any:
        import hashlib

        import numpy as np

        out = np.stack(
            [
                np.random.default_rng(int(hashlib.sha1(k).hexdigest()[:12], 16)).normal(
                    size=self.dim
                )
                for k in keys
            ]
        ).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_prepared(self, images: Any) -> Any:
        return self._vectors([p.colour.tobytes() for p in images])

    def embed_texts(self, texts: Any) -> Any:
        return self._vectors([t.encode() for t in texts])

    def attributes(self, embeddings: Any, top_k: int) -> list[dict[str, dict[str, float]]]:
        return [{"article_type": {"Tshirts": 0.5, "Shirts": 0.3, "Tops": 0.2}}] * len(embeddings)

    def codes(self, embeddings: Any) -> Any:
        import numpy as np

        return np.packbits(embeddings > 0, axis=1)


def photographed_catalog(shared: Path, out: Path) -> Path:
    """The catalog rows that have a 224px photo (written once)."""
    if out.is_file():
        return out
    ids = {p.stem for p in (shared / "images").glob("*.jpg")}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with (
        gzip.open(shared / "catalog.jsonl.gz", "rt", encoding="utf-8") as src,
        tmp.open("w", encoding="utf-8") as dst,
    ):
        for line in src:
            if line.strip() and str(json.loads(line).get("id")) in ids:
                dst.write(line)
    tmp.replace(out)
    return out


def extract_small_images(shared: Path, dest: Path) -> Path:
    """Extract images_60x80.tar.gz once; returns the folder holding <id>.jpg."""
    marker = dest / ".complete"
    images = dest / "images"
    if marker.is_file():
        return images
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tarfile.open(shared / "images_60x80.tar.gz", "r:*") as tar:
        for member in tar:
            name = Path(member.name).name
            if not member.isfile() or not name.endswith(".jpg"):
                continue
            fh = tar.extractfile(member)
            if fh is not None:
                images.mkdir(exist_ok=True)
                (images / name).write_bytes(fh.read())
    marker.write_text("ok\n")
    logger.info("extracted the 60x80 photos to %s in %.0fs", images, time.perf_counter() - t0)
    return images


def _own_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_one(
    name: str,
    settings: Settings,
    backend: Backend,
    encoder: Any,
    catalog: Path,
    images: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    index = f"{settings.cluster.products_index}-bench-{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()
    cpu_before = _own_cpu_s()
    node_before = backend.nodes_cpu_millis()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as state:
            report = ingest_products(
                settings,
                catalog,
                images_dir=images,
                index=index,
                batch_size=args.batch_size,
                workers=args.workers,
                limit=args.limit,
                state_dir=Path(state),
                backend=backend,
                encoder=encoder,
                options=PipelineOptions(prefetch=args.prefetch),
                progress=not args.no_progress,
            )
            count = backend.count(index)
            if args.twice:  # an unchanged re-run: everything is skipped, nothing re-encoded
                again = ingest_products(
                    settings,
                    catalog,
                    images_dir=images,
                    index=index,
                    batch_size=args.batch_size,
                    workers=args.workers,
                    limit=args.limit,
                    state_dir=Path(state),
                    backend=backend,
                    encoder=encoder,
                    progress=False,
                )
                print(f"\n=== ({name}) second run over the same rows\n{again.summary()}")
        own_cpu = _own_cpu_s() - cpu_before  # includes the re-run with --twice
        node_cpu = (backend.nodes_cpu_millis() - node_before) / 1000.0
    finally:
        backend.delete_index(index)
    load_after = os.getloadavg()
    n = max(1, report.read)
    cpu_ms = 1000.0 * (own_cpu + node_cpu) / n
    cores = os.cpu_count() or 1
    print(f"\n=== ({name}) {catalog.name} + {images}")
    print(report.summary())
    print(
        f"  documents in index: {count}; load average before {load_before[0]:.1f}, "
        f"after {load_after[0]:.1f} (1-min; 2 = both cores busy)"
    )
    print(
        f"  CPU time: ingest process {own_cpu:.0f}s ({1000 * own_cpu / n:.1f} ms/item), "
        f"OpenSearch {node_cpu:.0f}s ({1000 * node_cpu / n:.1f} ms/item); "
        f"on {cores} dedicated cores that is at most {1000 * cores / cpu_ms:.1f} items/s"
    )
    result = report.to_json()
    result.update(
        {
            "set": name,
            "documents": count,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "runtime": encoder.runtime,
            "cpu_count": cores,
            "ingest_cpu_s": own_cpu,
            "opensearch_cpu_s": node_cpu,
            "cpu_ms_per_item": cpu_ms,
            "items_per_s_if_cores_dedicated": 1000 * cores / cpu_ms,
        }
    )
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / f"{name}.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m evaluation.bench_ingest", __doc__)
    parser.add_argument("--set", choices=("a", "b", "both"), default="a")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows")
    parser.add_argument("--no-onnx", action="store_true", help="PyTorch backbones only")
    parser.add_argument(
        "--no-model",
        action="store_true",
        help="profiling: hash vectors instead of the backbones (pipeline + indexing cost only)",
    )
    parser.add_argument(
        "--text-encoder",
        choices=("static", "minilm"),
        default=None,
        help="documents' text encoder (default: models.document_text_encoder, static)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--twice", action="store_true", help="also time an unchanged re-run")
    args = parser.parse_args(argv)
    setup_logging(args)

    settings = load_settings()
    if args.text_encoder is not None:
        settings = settings.with_models(document_text_encoder=args.text_encoder)
    shared = settings.shared_data
    if not (shared / "catalog.jsonl.gz").is_file():
        print(f"shared data not found at {shared}", file=sys.stderr)
        return 1
    backend = connect(settings)
    backend.wait_for_health(timeout_s=60)
    apply(
        backend,
        desired_objects(settings.cluster.index_prefix, 0 if not settings.cluster.url else 1),
    )
    t0 = time.perf_counter()
    encoder: Any = (
        HashEncoder()
        if args.no_model
        else JointEncoder.load(settings, batch_size=args.batch_size, accelerate=not args.no_onnx)
    )
    print(
        f"model {encoder.model_version} loaded in {time.perf_counter() - t0:.1f}s ({encoder.runtime})"
    )

    if args.set in ("a", "both"):
        catalog = photographed_catalog(shared, BENCH_DIR / "catalog_photographed.jsonl")
        run_one("a", settings, backend, encoder, catalog, shared / "images", args)
    if args.set in ("b", "both"):
        images = extract_small_images(shared, CACHE / "images_60x80")
        run_one("b", settings, backend, encoder, shared / "catalog.jsonl.gz", images, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
