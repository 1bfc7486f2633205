"""``python -m engine demo | serve | fit`` — the main job.

``demo``: provision the local OpenSearch node when no cluster URL is configured, install our
configuration, ingest the bundled sample catalog (and its looks), then serve the API.
``serve``: only serve the API against the configured cluster.
``fit``: fit every learned part to a retailer's catalog into a model bundle
(:mod:`engine.train.fit`; ``python -m engine fit --help``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from engine.cli import CommandParser, fail, setup_logging
from engine.config.desired import desired_objects
from engine.config.installer import apply, default_replicas
from engine.engines import connect
from engine.errors import EngineError
from engine.settings import Settings, load_settings

logger = logging.getLogger("engine.demo")


def prepare(
    settings: Settings,
    *,
    catalog: Path,
    images: Path,
    looks: Path | None,
    mapping: str | None = None,
) -> None:
    """Node up (if local), config applied, sample products and looks ingested."""
    if not settings.cluster.url and settings.cluster.engine == "elasticsearch":
        from engine.cluster.elasticsearch import ElasticsearchNode

        status = ElasticsearchNode(settings.elasticsearch_node).up()
        logger.info("local Elasticsearch %s at %s (%s)", status.version, status.url, status.health)
    elif not settings.cluster.url:
        from engine.cluster.local import LocalNode

        status = LocalNode(settings.local_node).up()
        logger.info("local OpenSearch %s at %s (%s)", status.version, status.url, status.health)
    backend = connect(settings)
    backend.wait_for_health(timeout_s=120)
    changes = apply(
        backend,
        desired_objects(settings.cluster.index_prefix, replicas=default_replicas(backend)),
    )
    logger.info(
        "configuration: %s",
        ", ".join(f"{c.name} {c.action}" for c in changes),
    )
    from engine.catalog.mapping import load_catalog_mapping
    from ingest.pipeline import ingest_products

    report = ingest_products(
        settings,
        catalog,
        images_dir=images,
        backend=backend,
        mapping=load_catalog_mapping(mapping),
    )
    logger.info("products:\n%s", report.summary())
    if looks is not None and looks.exists():
        from ingest.looks import ingest_looks_file

        backend.ensure_index(settings.cluster.looks_index)
        looks_report = ingest_looks_file(backend, settings, looks)
        logger.info("looks: %s", looks_report)


def page_urls(base: str) -> str:
    """What a person can open once the service runs."""
    return "\n".join(
        (
            f"shop:          {base}/",
            f"merchandising: {base}/merchandising  (admin key: OUTFIT_API__ADMIN_API_KEY)",
            f"API docs:      {base}/docs",
        )
    )


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["fit"]:  # offline: its own options (engine.train.fit)
        from engine.train.fit import main as fit_main

        return fit_main(args_list[1:])
    parser = CommandParser("python -m engine", __doc__)
    sub = parser.add_subparsers()
    demo = sub.add_parser("demo", help="node up + config + ingest the sample + serve")
    demo.add_argument("--catalog", type=Path, default=None, help="default: sample/catalog.jsonl")
    demo.add_argument("--images", type=Path, default=None, help="default: sample/images")
    demo.add_argument("--looks", type=Path, default=None, help="default: sample/looks.jsonl")
    demo.add_argument(
        "--mapping", default=None, help="the catalog's mapping file or preset (docs/MAPPING.md)"
    )
    demo.add_argument("--no-serve", action="store_true", help="prepare only, do not serve")
    sub.add_parser("serve", help="serve the API")
    sub.add_parser("fit", help="fit the models to a catalog (python -m engine fit --help)")
    args = parser.parse_args(args_list)
    setup_logging(args)
    settings = load_settings()
    try:
        if args.command == "demo":
            sample = settings.sample_dir
            prepare(
                settings,
                catalog=args.catalog or sample / "catalog.jsonl",
                images=args.images or sample / "images",
                looks=args.looks or sample / "looks.jsonl",
                mapping=args.mapping,
            )
            if args.no_serve:
                return 0
    except EngineError as exc:
        return fail(exc)
    import uvicorn

    from engine.api.app import create_app

    base = f"http://{settings.api.host}:{settings.api.port}"
    print(page_urls(base), flush=True)
    api = settings.api
    if api.workers > 1:  # worker processes build their own app from the environment
        uvicorn.run(
            "engine.api.asgi:app",
            factory=True,
            workers=api.workers,
            host=api.host,
            port=api.port,
            **api.server_options(),
        )
    else:
        uvicorn.run(create_app(settings), host=api.host, port=api.port, **api.server_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
