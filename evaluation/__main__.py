"""``python -m evaluation report --catalog FILE --images DIR [--mapping M] [--looks FILE]
[--models BUNDLE] [--tasks LIST] [--out DIR] [--seed N] [--limit N] [--max-items N]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from engine.catalog.mapping import load_catalog_mapping
from engine.cli import CommandParser, setup_logging
from engine.settings import load_settings
from evaluation.report import (
    TASK_NAMES,
    TaskRegistry,
    default_registry,
    register_optional,
    run_report,
)

logger = logging.getLogger("evaluation")


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m evaluation", __doc__)
    sub = parser.add_subparsers()
    rep = sub.add_parser("report", help="run evaluation tasks, write metrics.json and report.md")
    rep.add_argument("--catalog", type=Path, required=True, help="catalog .jsonl or .jsonl.gz")
    rep.add_argument("--images", type=Path, required=True, help="folder of <id>.jpg photos")
    rep.add_argument(
        "--looks", type=Path, default=None, help="looks file (.jsonl, .json or a CSV table)"
    )
    rep.add_argument(
        "--mapping", default=None, help="the catalog's mapping file or preset (docs/MAPPING.md)"
    )
    rep.add_argument(
        "--models",
        type=Path,
        default=None,
        help="a model bundle (python -m engine fit): evaluated instead of the shipped one; "
        "adds the 'fit' task (zero-shot vs fitted)",
    )
    rep.add_argument(
        "--tasks",
        default="all",
        help=f"comma-separated task names or 'all' ({','.join(TASK_NAMES)})",
    )
    rep.add_argument(
        "--shopper-photos", type=Path, default=None, help="shopper task: folder of real photos"
    )
    rep.add_argument("--shopper-labels", type=Path, default=None, help="its image,label CSV")
    rep.add_argument(
        "--shopper-label-map", type=Path, default=None, help="label -> article types (TOML/JSON)"
    )
    rep.add_argument("--out", type=Path, default=None, help="output folder (default reports/<ts>)")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--limit", type=int, default=None, help="cap on queries/questions per task")
    rep.add_argument(
        "--max-items", type=int, default=None, help="use only the first N catalog products"
    )
    rep.add_argument(
        "--fail-on-error",
        action="store_true",
        help="exit 1 when a task raised an unexpected error (unavailable tasks do not count)",
    )
    return parser


def _shopper_extras(args: argparse.Namespace) -> dict[str, object]:
    real = (args.shopper_photos, args.shopper_labels, args.shopper_label_map)
    if not any(real):
        return {}
    if not all(real):
        raise SystemExit("--shopper-photos, --shopper-labels and --shopper-label-map go together")
    return {"shopper_photos": real}


def main(argv: Sequence[str] | None = None, registry: TaskRegistry | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args)
    registry = registry if registry is not None else default_registry()
    if args.models is not None and "fit" not in registry:
        registry.register("fit", "evaluation.tasks.fit")
    tasks = (
        None
        if args.tasks.strip() in ("", "all")
        else [t.strip() for t in args.tasks.split(",") if t.strip()]
    )
    for name in tasks or []:
        if name not in registry and not register_optional(registry, name):
            print(f"unknown task {name!r}; known: {', '.join(registry.names())}", file=sys.stderr)
            return 2
    if args.limit is not None and args.limit < 1:
        print("--limit must be >= 1", file=sys.stderr)
        return 2
    settings = load_settings()
    if args.models is not None:
        settings = settings.with_models(bundle=args.models)
    mapping = load_catalog_mapping(args.mapping) if args.mapping else None
    out = args.out or Path("reports") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    doc = run_report(
        settings,
        args.catalog,
        args.images,
        out,
        looks=args.looks,
        tasks=tasks,
        seed=args.seed,
        limit=args.limit,
        max_items=args.max_items,
        registry=registry,
        mapping=mapping,
        extras=_shopper_extras(args),
    )
    meta = doc["_meta"]
    for name, tm in meta["tasks"].items():
        extra = f" ({tm['reason']})" if doc[name] is None else ""
        print(f"{name}: {tm['status']}{extra}")
    print(f"wrote {out / 'metrics.json'} and {out / 'report.md'}")
    if args.fail_on_error and any(tm["status"] == "error" for tm in meta["tasks"].values()):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
