"""``python -m engine.tuning show | set-weights | set-blend | history | rollback`` (JSON output).

Examples::

    python -m engine.tuning show
    python -m engine.tuning set-weights --bm25 0.3 --vector 0.7 --comment "more visual"
    python -m engine.tuning set-blend --ltr-weight 0.4 --top-n 60
    python -m engine.tuning set-blend --disable
    python -m engine.tuning history --limit 10
    python -m engine.tuning rollback            # to the version before the newest
    python -m engine.tuning rollback --to 3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from engine.cli import CommandParser, fail, setup_logging
from engine.engines import connect
from engine.errors import EngineError
from engine.settings import load_settings
from engine.tuning.weights import TuningStore, parse_blend_patch, parse_weights


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        "python -m engine.tuning", __doc__.split("\n")[0], log_level=logging.WARNING
    )
    sub = parser.add_subparsers()
    sub.add_parser("show", help="live hybrid weights and re-rank blend")
    sw = sub.add_parser("set-weights", help="set the hybrid BM25/vector weights (sum to 1)")
    sw.add_argument("--bm25", type=float, required=True)
    sw.add_argument("--vector", type=float, required=True)
    sw.add_argument("--comment", default=None)
    sb = sub.add_parser("set-blend", help="set the LTR re-rank blend")
    sb.add_argument("--ltr-weight", type=float, default=None, help="0..1 (0 = original order)")
    sb.add_argument("--top-n", type=int, default=None, help="candidates re-ranked (1..1000)")
    onoff = sb.add_mutually_exclusive_group()
    onoff.add_argument("--enable", dest="enabled", action="store_true", default=None)
    onoff.add_argument("--disable", dest="enabled", action="store_false")
    sb.add_argument("--comment", default=None)
    hi = sub.add_parser("history", help="recorded versions, newest first")
    hi.add_argument("--limit", type=int, default=20)
    rb = sub.add_parser("rollback", help="re-apply an earlier version as a new version")
    rb.add_argument("--to", type=int, default=None, help="version (default: the one before newest)")
    rb.add_argument("--comment", default=None)
    return parser


def run(store: TuningStore, args: argparse.Namespace) -> Any:
    if args.command == "show":
        return store.current().model_dump(mode="json")
    if args.command == "set-weights":
        weights = parse_weights({"bm25": args.bm25, "vector": args.vector})
        return store.update(weights, actor="cli", comment=args.comment).model_dump(mode="json")
    if args.command == "set-blend":
        fields = {"ltr_weight": args.ltr_weight, "top_n": args.top_n, "enabled": args.enabled}
        patch = parse_blend_patch({k: v for k, v in fields.items() if v is not None})
        if not patch.model_dump(exclude_none=True):
            raise SystemExit("set-blend: give --ltr-weight, --top-n and/or --enable/--disable")
        return store.update(None, patch, actor="cli", comment=args.comment).model_dump(mode="json")
    if args.command == "history":
        return [v.model_dump(mode="json") for v in store.history(args.limit)]
    if args.command == "rollback":
        return store.rollback(args.to, actor="cli", comment=args.comment).model_dump(mode="json")
    raise SystemExit(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args)
    settings = load_settings()
    try:
        store = TuningStore(connect(settings), settings.cluster)
        out = run(store, args)
    except EngineError as exc:
        return fail(exc, as_json=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
