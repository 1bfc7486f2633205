"""``python -m engine.config apply [--dry-run] | render [--engine E]`` — install our templates,
pipelines and stored templates, or print the request body of each query type."""

from __future__ import annotations

import json
import sys

from engine.cli import CommandParser, fail, setup_logging
from engine.config.desired import desired_objects
from engine.config.installer import apply, default_replicas
from engine.engines import connect
from engine.errors import EngineError
from engine.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m engine.config", __doc__)
    sub = parser.add_subparsers()
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
    rp = sub.add_parser("render", help="print the request body of each query type")
    rp.add_argument("--engine", choices=["opensearch", "elasticsearch"], default=None)
    rp.add_argument("--text", default="red dress")
    args = parser.parse_args(argv)
    if args.command == "render":
        from engine.config.render import bodies

        engine = args.engine or load_settings().cluster.engine or "opensearch"
        print(json.dumps(bodies(engine, args.text), indent=2))
        return 0
    setup_logging(args)
    settings = load_settings()
    try:
        backend = connect(settings)
        backend.wait_for_health(timeout_s=30)
        replicas = args.replicas if args.replicas is not None else default_replicas(backend)
        objects = desired_objects(settings.cluster.index_prefix, replicas)
        changes = apply(backend, objects, dry_run=args.dry_run, reset_weights=args.reset_weights)
    except EngineError as exc:
        return fail(exc)
    verb = "would be " if args.dry_run else ""
    for c in changes:
        print(f"{c.kind:16s} {c.name:32s} {verb if c.action != 'unchanged' else ''}{c.action}")
    n = sum(c.action in ("created", "updated") for c in changes)
    same = sum(c.action == "unchanged" for c in changes)
    skipped = len(changes) - n - same
    print(
        f"{n} change(s){' (dry run)' if args.dry_run else ''}, {same} unchanged"
        + (f", {skipped} unsupported by this cluster" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
