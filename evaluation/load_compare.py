"""Before/after load test: two API servers on one index, queried alternately in the same run.

    python -m evaluation.load_compare --index speed-products-eval-0af122933fdd \\
        --catalog ../shared/data/fashion-product-images/catalog.jsonl.gz \\
        --images ../shared/data/fashion-product-images/images --baseline /work/main

Latency on a shared machine drifts with the other jobs' load, so a before/after comparison made
in two separate runs measures the neighbours as much as the code. This command starts the
``serve`` sub-command of :mod:`evaluation.load_search` twice on 127.0.0.1, the *baseline* from
another checkout (``--baseline``: its own code, e.g. the main branch) and the *candidate* from
this one (``--candidate-env NAME=VALUE`` sets extra settings for it only), both bound to the same
index, then for each query type and concurrency sends the same requests in chunks of
``--chunk``, alternating baseline and candidate, and prints both sides' percentiles, QPS and the
load average before and after each type. Bounded: at most ``--requests`` requests per type,
side and concurrency.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.cli import CommandParser, setup_logging
from engine.settings import SAMPLE_DIR, load_settings
from evaluation.load_search import (
    TYPES,
    Result,
    _free_port,
    _wait_ready,
    build_requests,
    run_load,
)

logger = logging.getLogger("evaluation.load_compare")

SIDES = ("baseline", "candidate")


def _start(root: Path, index: str, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(root), **env_extra}
    cmd = [sys.executable, "-m", "evaluation.load_search", "serve", "--index", index]
    proc = subprocess.Popen([*cmd, "--port", str(port)], cwd=root, env=env)
    return proc, f"http://127.0.0.1:{port}"


def _merge(into: Result, part: Result) -> None:
    into.sent += part.sent
    into.errors += part.errors
    into.wall_s += part.wall_s
    into.latencies_ms.extend(part.latencies_ms)
    into.first_error = into.first_error or part.first_error


def compare(
    urls: dict[str, str],
    reqs: Sequence[Any],
    warm: Sequence[Any],
    *,
    concurrency: int,
    chunk: int,
    duration_s: float,
) -> dict[str, dict[str, Any]]:
    """The same requests to every side, chunk by chunk, alternating which side goes first."""
    for url in urls.values():
        run_load(url, warm, concurrency=1, duration_s=120.0)
    results = {side: Result(kind=reqs[0].kind if reqs else "?") for side in urls}
    for n, start in enumerate(range(0, len(reqs), chunk)):
        part = reqs[start : start + chunk]
        order = list(urls) if n % 2 == 0 else list(reversed(urls))
        for side in order:
            _merge(
                results[side],
                run_load(urls[side], part, concurrency=concurrency, duration_s=duration_s),
            )
    out = {}
    for side, res in results.items():
        out[side] = res.summary()
        if res.first_error:
            out[side]["first_error"] = res.first_error
    return out


def _format(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'type':<12} {'c':>2} {'side':<10} {'n':>5} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'mean ms':>8} {'QPS':>7}  load avg (before -> after)"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        for side in SIDES:
            s = r[side]
            lines.append(
                f"{r['type']:<12} {r['concurrency']:>2} {side:<10} {s.get('n', 0):>5} "
                f"{s.get('errors', 0):>4} {s.get('p50_ms', float('nan')):>8} "
                f"{s.get('p99_ms', float('nan')):>8} {s.get('mean_ms', float('nan')):>8} "
                f"{s.get('qps') or '':>7}  {r['load_before']} -> {r['load_after']}"
            )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = CommandParser("python -m evaluation.load_compare", __doc__)
    p.add_argument("--index", required=True, help="products index both servers search")
    p.add_argument("--baseline", type=Path, required=True, help="checkout of the baseline code")
    p.add_argument("--candidate", type=Path, default=Path.cwd(), help="default: this checkout")
    p.add_argument(
        "--candidate-env", action="append", default=[], help="NAME=VALUE for the candidate only"
    )
    p.add_argument("--catalog", type=Path, default=SAMPLE_DIR / "catalog.jsonl")
    p.add_argument("--images", type=Path, default=SAMPLE_DIR / "images")
    p.add_argument("--requests", type=int, default=200, help="max requests per type and side")
    p.add_argument("--concurrency", default="1,2", help="comma-separated client thread counts")
    p.add_argument("--chunk", type=int, default=20, help="requests per side before switching")
    p.add_argument("--duration", type=float, default=30.0, help="max seconds per chunk")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--types", default=",".join(TYPES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", type=Path, default=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args)
    load_settings()  # fail early on a bad environment
    from engine.catalog import load_catalog

    kinds = [k.strip() for k in args.types.split(",") if k.strip()]
    unknown = set(kinds) - set(TYPES)
    if unknown:
        print(f"unknown types {sorted(unknown)}; known: {', '.join(TYPES)}", file=sys.stderr)
        return 2
    cand_env = dict(e.split("=", 1) for e in args.candidate_env)
    products = load_catalog(args.catalog)
    reqs = build_requests(products, args.images, args.requests, args.seed)
    warm = build_requests(products, args.images, args.warmup, args.seed + 1)
    procs: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    try:
        for side, root, env in (
            ("baseline", args.baseline.resolve(), {}),
            ("candidate", args.candidate.resolve(), cand_env),
        ):
            procs[side], urls[side] = _start(root, args.index, env)
        for side in SIDES:
            _wait_ready(urls[side], procs[side], timeout_s=240.0)
        for kind in kinds:
            for c in (int(x) for x in args.concurrency.split(",")):
                before = tuple(round(x, 2) for x in os.getloadavg())
                res = compare(
                    urls,
                    reqs[kind],
                    warm[kind],
                    concurrency=c,
                    chunk=args.chunk,
                    duration_s=args.duration,
                )
                after = tuple(round(x, 2) for x in os.getloadavg())
                rows.append(
                    {
                        "type": kind,
                        "concurrency": c,
                        **res,
                        "load_before": before,
                        "load_after": after,
                    }
                )
                print(_format(rows[-1:]).splitlines()[-2:], flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    info = {"index": args.index, "baseline": str(args.baseline), "candidate_env": cand_env}
    print(f"\nbefore/after load test (alternating chunks of {args.chunk}): {json.dumps(info)}")
    print(_format(rows))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    errors = sum(r[s].get("errors", 0) for r in rows for s in SIDES)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
