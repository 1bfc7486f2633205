"""``python -m ingest`` — load a product catalog into OpenSearch.

  products  full ingest: validate, fetch + decode images, encode, index (idempotent, resumable)
  update    business fields only (price, discounted_price, rating, in_stock, sales, clicks)
  delete    remove products by id
  looks     curated looks (outfits) from JSONL into the looks index (same as
            ``python -m ingest.looks``; docs/LOOKS.md)

Exit codes: 0 done (per-item failures are listed in the failure report), 1 bad input or
configuration, 2 the cluster went away (re-run with --resume to continue).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engine.backend import Backend
from engine.catalog.mapping import load_catalog_mapping
from engine.cli import CommandParser, fail, setup_logging
from engine.config.desired import desired_objects
from engine.config.installer import apply, default_replicas
from engine.engines import connect
from engine.errors import ClusterUnavailable, EngineError, IngestAborted
from engine.settings import Settings, load_settings
from ingest import looks as looks_cli
from ingest.checkpoint import DEFAULT_STATE_DIR
from ingest.pipeline import PipelineOptions, delete_products, ingest_products, update_products
from ingest.readers import FORMATS
from ingest.report import IngestReport

logger = logging.getLogger("ingest")


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m ingest", __doc__)
    sub = parser.add_subparsers()

    def common(p: argparse.ArgumentParser, catalog: bool = True) -> None:
        if catalog:
            p.add_argument("--catalog", type=Path, required=True, help="JSONL(.gz), CSV or Parquet")
            p.add_argument("--format", choices=FORMATS, default=None, help="default: from the name")
            p.add_argument(
                "--mapping",
                default=None,
                help="the catalog's mapping file (JSON, TOML or YAML; docs/MAPPING.md) or a "
                "preset name (mango, myntra); default: our own format",
            )
        p.add_argument("--index", default=None, help="target index (default: <prefix>-products)")
        p.add_argument("--failures", type=Path, default=None, help="failure report (JSONL)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--report-json", type=Path, default=None, help="write the summary as JSON")
        p.add_argument(
            "--skip-config",
            action="store_true",
            help="do not apply templates/pipelines first (python -m engine.config apply)",
        )

    p = sub.add_parser("products", help="ingest products (encode + index)")
    common(p)
    p.add_argument("--images", type=Path, default=None, help="folder with <id>.jpg photos")
    p.add_argument("--batch-size", type=_positive, default=64, help="items per batch (64)")
    p.add_argument("--workers", type=_positive, default=2, help="image decode threads (2)")
    p.add_argument("--resume", action="store_true", help="continue after the last checkpoint")
    p.add_argument("--limit", type=_positive, default=None, help="read at most N rows")
    p.add_argument(
        "--state-dir", type=Path, default=None, help=f"checkpoints (default {DEFAULT_STATE_DIR})"
    )
    p.add_argument("--http-timeout", type=float, default=10.0, help="seconds per image request")
    p.add_argument("--http-retries", type=int, default=2, help="retries per image request")
    p.add_argument("--max-image-mb", type=float, default=10.0, help="largest image accepted")
    p.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        help="with --text-encoder minilm: folder of frozen MiniLM features reused by content "
        "and updated (e.g. .cache/features, which training fills); re-ingesting after "
        "retraining the joint heads then skips MiniLM",
    )
    p.add_argument(
        "--text-encoder",
        choices=("static", "minilm"),
        default=None,
        help="documents' text encoder: 'static' (distilled from MiniLM, <1 ms a product) or "
        "'minilm' (~46 ms of CPU a product); default: models.document_text_encoder (static)",
    )
    p.add_argument(
        "--refresh-interval",
        default="30s",
        help="index refresh interval while ingesting, restored afterwards "
        "('keep' leaves the index's own; default 30s)",
    )
    p.add_argument(
        "--force-merge",
        type=int,
        default=None,
        metavar="SEGMENTS",
        help="after a run that reached the end of the catalog, merge the index down to this "
        "many segments (1 for a catalog that is mostly read; default: the node decides)",
    )

    p = sub.add_parser("update", help="update business fields only (no re-encoding)")
    common(p)
    p.add_argument("--batch-size", type=_positive, default=500)
    p.add_argument("--limit", type=_positive, default=None)

    p = sub.add_parser("delete", help="delete products by id")
    common(p, catalog=False)
    p.add_argument("--ids", type=Path, required=True, help="one id a line (or JSONL with id)")
    p.add_argument("--batch-size", type=_positive, default=1000)

    p = sub.add_parser(
        "looks",
        help="ingest curated looks (outfits) from JSONL (python -m ingest.looks)",
        description=looks_cli.__doc__,
    )
    looks_cli.add_arguments(p)
    return parser


def _prepare_cluster(settings: Settings, backend: Backend, index: str, skip: bool) -> None:
    backend.wait_for_health(timeout_s=30)
    if not skip:
        replicas = default_replicas(backend)
        changes = apply(backend, desired_objects(settings.cluster.index_prefix, replicas))
        changed = [c for c in changes if c.action != "unchanged"]
        for c in changed:
            logger.info("config: %s %s %s", c.action, c.kind, c.name)
    pattern = f"{settings.cluster.index_prefix}-products"
    if not index.startswith(pattern) and not backend.index_exists(index):
        raise EngineError(
            f"index {index!r} does not match the products template ({pattern}*) and does not "
            "exist; pick a name starting with it so the index gets our mappings",
            index=index,
        )


def _print(report: IngestReport, report_json: Path | None) -> None:
    print(report.summary())
    if report_json is not None:
        report_json.parent.mkdir(parents=True, exist_ok=True)
        report_json.write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "looks":
        return looks_cli.run(args)
    setup_logging(args)
    settings = load_settings()
    index = args.index or settings.cluster.products_index
    progress = not args.no_progress
    try:
        backend = connect(settings)
        _prepare_cluster(settings, backend, index, args.skip_config)
        if args.command == "products":
            if args.text_encoder is not None:
                settings = settings.with_models(document_text_encoder=args.text_encoder)
            options = PipelineOptions(
                http_timeout_s=args.http_timeout,
                http_retries=args.http_retries,
                max_image_bytes=int(args.max_image_mb * 1024 * 1024),
                bulk_refresh_interval=None
                if args.refresh_interval == "keep"
                else args.refresh_interval,
                force_merge_segments=args.force_merge,
            )
            report = ingest_products(
                settings,
                args.catalog,
                images_dir=args.images,
                fmt=args.format,
                mapping=load_catalog_mapping(args.mapping),
                index=index,
                batch_size=args.batch_size,
                workers=args.workers,
                resume=args.resume,
                limit=args.limit,
                failures_path=args.failures,
                state_dir=args.state_dir,
                backend=backend,
                options=options,
                progress=progress,
                feature_cache=args.feature_cache,
            )
        elif args.command == "update":
            report = update_products(
                settings,
                args.catalog,
                fmt=args.format,
                mapping=load_catalog_mapping(args.mapping),
                index=index,
                batch_size=args.batch_size,
                limit=args.limit,
                failures_path=args.failures,
                backend=backend,
                progress=progress,
            )
        else:
            report = delete_products(
                settings,
                args.ids,
                index=index,
                batch_size=args.batch_size,
                failures_path=args.failures,
                backend=backend,
            )
    except IngestAborted as exc:
        partial = getattr(exc, "report", None)
        if isinstance(partial, IngestReport):
            _print(partial, args.report_json)
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except ClusterUnavailable as exc:
        print(
            f"error: {exc.message}. Check the cluster, then re-run"
            + (" with --resume" if args.command == "products" else ""),
            file=sys.stderr,
        )
        return 2
    except EngineError as exc:
        return fail(exc)
    _print(report, args.report_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
