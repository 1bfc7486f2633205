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


def test_cpu_by_process_counts_a_process_and_its_children() -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    from evaluation.cpu_usage import CpuByProcess, listening_pid, process_cpu_s

    # a child that burns ~0.3 s of CPU is counted under its parent's name
    split = CpuByProcess(
        {"tree": os.getpid(), "self": os.getpid(), "gone": 2**22 + 12345, "none": None},
        alone=("self",),
    )
    split.start()
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # sample while the child is alive
        busy = process_cpu_s(os.getpid())
        assert busy is not None
        if busy - (split._start["tree"] or 0.0) > 0.25:
            break
        time.sleep(0.02)  # the test itself stays (nearly) idle
    per = split.per_request(10)
    child.wait(timeout=30)
    assert per["tree"] is not None and per["tree"] >= 25.0  # >= 0.25 s over 10 requests
    assert per["self"] is not None and per["self"] < per["tree"] - 20.0  # the child left out
    assert per["gone"] is None and per["none"] is None
    assert CpuByProcess({"x": os.getpid()}).per_request(0) == {"x": None}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert listening_pid(s.getsockname()[1]) == os.getpid()


def test_node_pid_only_for_a_node_on_this_machine() -> None:
    from engine.settings import Settings
    from evaluation.cpu_usage import format_cpu_split, node_pid

    assert node_pid(Settings(cluster={"url": "http://search.example.com:9200"})) is None
    assert format_cpu_split({"client": 1.5, "api": 4.0, "node": None}) == "1.5+4+?=5.5"
    assert format_cpu_split(None) == ""
