"""evaluation.load_search's command line: the load test runs without a subcommand."""

from __future__ import annotations

from pathlib import Path

from evaluation.load_search import _parser


def test_the_load_test_needs_no_subcommand_and_serve_still_parses() -> None:
    args = _parser().parse_args(["--catalog", "c.jsonl", "--no-ingest", "--concurrency", "2"])
    assert args.command is None and args.catalog == Path("c.jsonl") and args.concurrency == 2
    srv = _parser().parse_args(["serve", "--index", "i", "--port", "9"])
    assert srv.command == "serve" and srv.index == "i" and srv.port == 9
