"""The report command end to end on the repository sample against the real node (issue 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.backend import Backend
from engine.settings import Settings
from evaluation.report import TASK_KEYS, run_report
from tests.conftest import SAMPLE, TEST_PREFIX

pytestmark = [pytest.mark.opensearch, pytest.mark.slow]


def test_report_on_sample_against_real_node(
    cluster: Backend, settings: Settings, tmp_path: Path
) -> None:
    try:
        run_report(
            settings,
            SAMPLE / "catalog.jsonl",
            SAMPLE / "images",
            tmp_path,
            looks=SAMPLE / "looks.jsonl",
            seed=0,
        )
    finally:
        # the search task builds a throw-away, content-named index: remove ours
        cluster.client.indices.delete(
            index=f"{TEST_PREFIX}-products-eval-*", ignore_unavailable=True
        )
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "report.md").exists()
    assert set(TASK_KEYS) <= set(doc)
    meta = doc["_meta"]
    for task, keys in TASK_KEYS.items():
        metrics = doc[task]
        if metrics is None:
            # a task that cannot run must say why, never vanish silently
            assert meta["tasks"][task]["reason"]
            continue
        if task == "latency":
            assert set(metrics) >= {"text", "image", "compose"}
            for value in metrics.values():
                if value is not None:
                    assert value["p50_ms"] <= value["p99_ms"]
        else:
            assert set(keys) <= set(metrics)
    # the tasks whose models ship with the repo must produce numbers on the real node
    for task in ("joint", "search", "ltr", "latency"):
        assert doc[task] is not None, meta["tasks"][task]
    assert 0.0 <= doc["search"]["text_ndcg_at_10"] <= 1.0
    # the plots the report promises: recall@K curves, latency histograms, per-category bars
    plots = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {
        "joint_text_to_image_recall.png",
        "latency_histograms.png",
        "search_category_top1_by_type.png",
    } <= plots
    report = (tmp_path / "report.md").read_text()
    assert all(f"plots/{name}" in report for name in plots)
