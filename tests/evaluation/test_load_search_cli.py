"""evaluation.load_search's command line: the load test runs without a subcommand."""

from __future__ import annotations

from pathlib import Path

from evaluation.load_search import _parser


def test_the_load_test_needs_no_subcommand_and_serve_still_parses() -> None:
    args = _parser().parse_args(["--catalog", "c.jsonl", "--no-ingest", "--concurrency", "2"])
    assert args.command is None and args.catalog == Path("c.jsonl") and args.concurrency == 2
    srv = _parser().parse_args(["serve", "--index", "i", "--port", "9"])
    assert srv.command == "serve" and srv.index == "i" and srv.port == 9


def test_workers_reach_the_serve_subcommand() -> None:
    args = _parser().parse_args(["--workers", "2"])
    assert args.workers == 2
    assert _parser().parse_args([]).workers is None  # then: settings.api.workers
    srv = _parser().parse_args(["serve", "--index", "i", "--port", "9", "--workers", "3"])
    assert srv.workers == 3


def test_target_verdicts_follow_the_issue() -> None:
    from evaluation.load_search import target_verdict

    assert target_verdict("text", {"n": 5, "p50_ms": 19.9, "p99_ms": 49.0}).endswith("PASS")
    assert target_verdict("text", {"n": 5, "p50_ms": 19.9, "p99_ms": 51.0}).endswith("FAIL")
    assert target_verdict("compose", {"n": 5, "p50_ms": 21.0, "p99_ms": 30.0}).endswith("FAIL")
    # photo upload: a p50 target only
    assert target_verdict("image", {"n": 5, "p50_ms": 39.0, "p99_ms": 500.0}) == "p50<=40: PASS"
    assert target_verdict("text_cold", {"n": 5, "p50_ms": 1.0, "p99_ms": 1.0}) == ""
    assert target_verdict("text", {"n": 0}) == ""


def test_busy_cores_from_two_samples() -> None:
    from evaluation.cpu_usage import busy_cores, cpu_times

    assert busy_cores((100.0, 1000.0), (150.0, 1100.0), 2) == 1.0
    assert busy_cores(None, (1.0, 2.0), 2) is None
    assert busy_cores((5.0, 10.0), (5.0, 10.0), 2) is None
    sample = cpu_times()
    if sample is not None:  # Linux
        busy, total = sample
        assert 0 <= busy <= total
