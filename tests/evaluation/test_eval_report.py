"""The report runner on the repo sample: fake tasks via the registry API, nulls with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ModelUnavailable
from engine.settings import Settings
from evaluation import plots
from evaluation.__main__ import main
from evaluation.report import (
    LATENCY_QUERY_TYPES,
    TASK_KEYS,
    TASK_NAMES,
    TaskRegistry,
    default_registry,
    run_report,
    validate_metrics,
)
from evaluation.tasks.base import EvalContext, TaskResult

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "sample" / "catalog.jsonl"
IMAGES = ROOT / "sample" / "images"
MISSING = "evaluation.tasks._no_such_task_module"


def _strict_json(path: Path) -> dict[str, Any]:
    def no_constants(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    data = json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)
    assert isinstance(data, dict)
    return data


def fake_joint(ctx: EvalContext) -> TaskResult:
    ds = ctx.get_dataset()
    assert ds.photographed, "the sample has photos"
    share = len(ds.test_photographed) / len(ds.photographed)
    path = plots.recall_curves(
        {"fake": {1: 0.1, 10: share, 100: 1.0}}, ctx.plot_path("joint_recall_at_k")
    )
    return TaskResult(
        name="joint",
        metrics={
            "text_to_image_recall_at_10": share,
            "image_to_image_p_at_10_type_colour": 0.5,
            "attr_top1_article_type": 0.75,
            "attr_top1_base_colour": float("nan"),  # not finite -> null + problem
            "per_type": {"Tshirts": 0.5},
        },
        primary="text_to_image_recall_at_10",
        baselines={"random": {"text_to_image_recall_at_10": 0.01}},
        plots=[path],
        notes=[f"{len(ds.test_photographed)} test photos"],
    )


def fake_latency(ctx: EvalContext) -> TaskResult:
    samples = {t: [1.0, 2.0, 3.0, 40.0] for t in ("text", "image")}
    path = plots.latency_histograms(samples, ctx.plot_path("latency_hist"))
    return TaskResult(
        name="latency",
        metrics={
            "text": {"p50_ms": 2.5, "p99_ms": 38.9, "n": 4},
            "image": {"p50_ms": 2.5},  # p99 missing -> null + problem
            "compose": None,
        },  # complete_the_look missing -> null + problem
        plots=[path],
    )


def raises(exc: BaseException) -> Any:
    def run(ctx: EvalContext) -> TaskResult:
        raise exc

    return run


def no_metrics(ctx: EvalContext) -> TaskResult:
    return TaskResult(name="ltr", metrics=None, reason="no click log in this catalog")


@pytest.fixture
def registry() -> TaskRegistry:
    reg = TaskRegistry()
    reg.register("joint", fake_joint)
    reg.register("binary", raises(NotImplementedError("binary codes not trained")))
    reg.register("search", MISSING)
    reg.register("looks", raises(ModelUnavailable("no compatibility model")))
    reg.register("ltr", no_metrics)
    reg.register("latency", fake_latency)
    reg.register("broken", raises(RuntimeError("boom")), keys=["x"])
    reg.register("importer", raises(ImportError("No module named 'faiss'")))
    return reg


def test_report_on_sample_shapes_and_reasons(tmp_path: Path, registry: TaskRegistry) -> None:
    doc = run_report(Settings(), CATALOG, IMAGES, tmp_path, registry=registry, seed=3, limit=5)
    on_disk = _strict_json(tmp_path / "metrics.json")
    assert on_disk == doc
    assert list(doc) == [*registry.names(), "_meta"]

    joint = doc["joint"]
    assert set(TASK_KEYS["joint"]) <= set(joint)
    assert joint["attr_top1_article_type"] == 0.75
    assert joint["attr_top1_base_colour"] is None
    assert joint["per_type"] == {"Tshirts": 0.5}

    meta = doc["_meta"]
    assert meta["catalog"] == str(CATALOG)
    assert meta["items"]["products"] == 322
    assert meta["items"]["photographed"] == 322
    assert meta["items"]["test"] + meta["items"]["train"] == 322
    assert meta["seed"] == 3 and meta["limit"] == 5
    assert meta["tasks"]["joint"]["status"] == "ok"
    assert any("attr_top1_base_colour" in p for p in meta["tasks"]["joint"]["problems"])
    assert meta["baselines"]["joint"] == {"random": {"text_to_image_recall_at_10": 0.01}}
    assert meta["tasks"]["joint"]["plots"] == ["plots/joint_recall_at_k.png"]
    assert (tmp_path / "plots" / "joint_recall_at_k.png").stat().st_size > 0
    assert set(meta["timings_s"]) == set(registry.names())

    # every task that could not run is null with a reason
    expected = {
        "binary": ("unavailable", "binary codes not trained"),
        "search": ("unavailable", "does not exist yet"),
        "looks": ("unavailable", "no compatibility model"),
        "ltr": ("unavailable", "no click log"),
        "broken": ("error", "RuntimeError: boom"),
        "importer": ("unavailable", "faiss"),
    }
    for name, (status, text) in expected.items():
        assert doc[name] is None, name
        assert meta["tasks"][name]["status"] == status, name
        assert text in meta["reasons"][name], name
    assert "Traceback" in meta["tasks"]["broken"]["traceback"]

    latency = doc["latency"]
    assert list(latency)[: len(LATENCY_QUERY_TYPES)] == list(LATENCY_QUERY_TYPES)
    assert latency["text"] == {"p50_ms": 2.5, "p99_ms": 38.9, "n": 4}
    assert latency["image"] == {"p50_ms": 2.5, "p99_ms": None}
    assert latency["compose"] is None and latency["complete_the_look"] is None
    problems = meta["tasks"]["latency"]["problems"]
    assert "image.p99_ms: missing" in problems
    assert "complete_the_look: missing" in problems

    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    for name in registry.names():
        assert f"## {name}" in md
    assert "binary codes not trained" in md
    assert "![joint_recall_at_k](plots/joint_recall_at_k.png)" in md
    assert "| text | 2.5 | 38.9 |" in md
    assert "random" in md


def test_default_registry_reports_missing_tasks(tmp_path: Path) -> None:
    reg = default_registry()
    assert reg.names() == list(TASK_NAMES)
    for name in TASK_NAMES:
        assert reg.keys_for(name) == TASK_KEYS[name]
        reg.register(name, f"{MISSING}_{name}")  # never run the real (heavy) tasks here
    doc = run_report(Settings(), CATALOG, IMAGES, tmp_path, registry=reg, tasks=["search", "ltr"])
    assert list(doc) == ["search", "ltr", "_meta"]
    assert doc["search"] is None and doc["ltr"] is None
    assert "does not exist yet" in doc["_meta"]["reasons"]["search"]
    with pytest.raises(ValueError, match="unknown task"):
        run_report(Settings(), CATALOG, IMAGES, tmp_path, registry=reg, tasks=["nope"])


def test_task_keys_are_the_fixed_contract() -> None:
    assert TASK_NAMES == ("joint", "binary", "search", "looks", "ltr", "latency")
    assert TASK_KEYS["search"] == (
        "text_ndcg_at_10",
        "text_ndcg_at_10_bm25",
        "compose_v_ndcg_at_10",
        "compose_t_ndcg_at_10",
        "compose_mm_ndcg_at_10",
        "category_top1",
        "category_top1_classifier_only",
    )
    assert TASK_KEYS["latency"] == ("text", "image", "compose", "complete_the_look")


def test_validate_metrics() -> None:
    out, problems = validate_metrics("ltr", {"ndcg_at_10_before_rerank": 0.5}, TASK_KEYS["ltr"])
    assert out == {"ndcg_at_10_before_rerank": 0.5, "ndcg_at_10_after_rerank": None}
    assert problems == ["ndcg_at_10_after_rerank: missing"]
    out, problems = validate_metrics(
        "ltr",
        {"ndcg_at_10_before_rerank": "high", "ndcg_at_10_after_rerank": True},
        TASK_KEYS["ltr"],
    )
    assert out["ndcg_at_10_before_rerank"] is None and out["ndcg_at_10_after_rerank"] is None
    assert len(problems) == 2
    out, problems = validate_metrics("custom", {"a": 1}, None)
    assert out == {"a": 1} and problems == []


def test_registry_rejects_bad_names() -> None:
    with pytest.raises(ValueError):
        TaskRegistry().register("bad name!", MISSING)


def test_cli_report_on_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = TaskRegistry()
    reg.register("joint", MISSING)
    reg.register("latency", fake_latency)
    out = tmp_path / "r"
    argv = ["report", "--catalog", str(CATALOG), "--images", str(IMAGES), "--out", str(out)]
    assert main([*argv, "--seed", "1"], registry=reg) == 0
    doc = _strict_json(out / "metrics.json")
    assert doc["joint"] is None and doc["latency"]["text"]["p50_ms"] == 2.5
    assert "joint: unavailable" in capsys.readouterr().out
    assert main([*argv, "--tasks", "joint,nope"], registry=reg) == 2
    reg.register("broken", raises(RuntimeError("boom")))
    assert main([*argv, "--tasks", "broken"], registry=reg) == 0
    assert main([*argv, "--tasks", "broken", "--fail-on-error"], registry=reg) == 1


def test_category_bars(tmp_path: Path) -> None:
    single = plots.category_bars({"Tshirts": 0.6, "Jeans": 0.4}, tmp_path / "a.png")
    grouped = plots.category_bars(
        {"hybrid": {"Tshirts": 0.6, "Jeans": 0.4}, "bm25": {"Tshirts": 0.5}},
        tmp_path / "sub" / "b.png",
        ylabel="nDCG@10",
    )
    for path in (single, grouped):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plots.category_bars({}, tmp_path / "c.png")
    with pytest.raises(ValueError):
        plots.latency_histograms({"text": []}, tmp_path / "d.png")
