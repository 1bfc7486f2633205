"""``python -m engine.config apply [--dry-run]`` — install our templates, pipelines, stored templates."""

from __future__ import annotations

import argparse
import logging
import sys

from engine.backend import Backend
from engine.config.desired import desired_objects
from engine.config.installer import apply, default_replicas
from engine.errors import EngineError
from engine.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.config", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ap = sub.add_parser("apply", help="apply plugin_config/ to the cluster")
    ap.add_argument("--dry-run", action="store_true", help="show what would change")
    ap.add_argument(
        "--reset-weights",
        action="store_true",
        help="reset tuned hybrid weights to the configured ones (default: keep tuned weights)",
    )
    ap.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="index replicas (default: 1 when the cluster has several data nodes, else 0)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("opensearch").setLevel(logging.WARNING)
    settings = load_settings()
    try:
        backend = Backend.from_settings(settings)
        backend.wait_for_health(timeout_s=30)
        replicas = args.replicas if args.replicas is not None else default_replicas(backend)
        objects = desired_objects(settings.cluster.index_prefix, replicas)
        changes = apply(backend, objects, dry_run=args.dry_run, reset_weights=args.reset_weights)
    except EngineError as exc:
        print(f"error: {exc.message} {exc.details or ''}", file=sys.stderr)
        return 1
    verb = "would be " if args.dry_run else ""
    for c in changes:
        print(f"{c.kind:16s} {c.name:32s} {verb if c.action != 'unchanged' else ''}{c.action}")
    n = sum(c.action != "unchanged" for c in changes)
    print(f"{n} change(s){' (dry run)' if args.dry_run else ''}, {len(changes) - n} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
