"""``report.md`` from a ``metrics.json`` document (:func:`render_markdown`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evaluation.report_contract import KEY_DESCRIPTIONS, LATENCY_QUERY_TYPES

# The fit task measures two bundles with the same keys (evaluation.tasks.fit).
_BUNDLE_SUFFIXES = {"_zero_shot": "shipped default bundle", "_fitted": "fitted bundle"}


def describe(key: str) -> str:
    """A metric's description; ``<key>_zero_shot`` / ``<key>_fitted`` name the bundle too."""
    if key in KEY_DESCRIPTIONS:
        return KEY_DESCRIPTIONS[key]
    for suffix, which in _BUNDLE_SUFFIXES.items():
        if key.endswith(suffix):
            base = KEY_DESCRIPTIONS.get(key[: -len(suffix)])
            return f"{base} ({which})" if base else which
    return ""


def _fmt(value: Any, ms: bool = False) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if ms else f"{value:.4f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def render_markdown(doc: Mapping[str, Any]) -> str:
    """``report.md`` from a ``metrics.json`` document."""
    meta = doc["_meta"]
    items = meta.get("items", {})
    tasks = [k for k in doc if k != "_meta"]
    lines = [
        "# Evaluation report",
        "",
        f"Generated {meta.get('finished_at', '')} in {meta.get('seconds', 0):.1f} s "
        f"(seed {meta.get('seed')}, limit {meta.get('limit')}).",
        "",
        "## Data",
        "",
        *_table(
            ["what", "value"],
            [
                ["catalog", f"`{meta.get('catalog')}`"],
                ["images", f"`{meta.get('images')}`"],
                ["looks", f"`{meta.get('looks')}`" if meta.get("looks") else "none"],
                ["products", str(items.get("products"))],
                ["photographed", str(items.get("photographed"))],
                [
                    "test / train (is_test_id)",
                    f"{items.get('test')} / {items.get('train')} "
                    f"(photographed {items.get('test_photographed')} / "
                    f"{items.get('train_photographed')})",
                ],
                ["article types", str(items.get("article_types"))],
                [
                    "with style_note / rating",
                    f"{items.get('fields', {}).get('style_note')} / "
                    f"{items.get('fields', {}).get('rating')}",
                ],
            ],
        ),
        "",
        "## Summary",
        "",
    ]
    rows = []
    for name in tasks:
        tm = meta["tasks"][name]
        primary = tm.get("primary")
        metrics = doc[name]
        value = "n/a"
        if metrics is not None and primary and primary in metrics:
            value = f"{primary} = {_fmt(metrics[primary])}"
        elif metrics is not None and name == "latency":
            value = (
                ", ".join(
                    f"{t} p50 {_fmt((metrics.get(t) or {}).get('p50_ms'), ms=True)} ms"
                    for t in LATENCY_QUERY_TYPES
                    if metrics.get(t)
                )
                or "n/a"
            )
        status = tm["status"] if metrics is not None else f"{tm['status']}: {tm.get('reason')}"
        rows.append([name, status, value, f"{tm['seconds']:.1f}"])
    lines += _table(["task", "status", "primary", "seconds"], rows)

    for name in tasks:
        tm = meta["tasks"][name]
        metrics = doc[name]
        lines += ["", f"## {name}", ""]
        if metrics is None:
            lines.append(f"**Not available** ({tm['status']}): {tm.get('reason')}")
            continue
        if name == "latency":
            lat_rows = []
            for key, value in metrics.items():
                v = value if isinstance(value, Mapping) else {}
                lat_rows.append(
                    [key, _fmt(v.get("p50_ms"), ms=True), _fmt(v.get("p99_ms"), ms=True)]
                )
            lines += _table(["query type", "p50 ms", "p99 ms"], lat_rows)
        else:
            lines += _table(
                ["metric", "value", "what"],
                [[k, _fmt(v), describe(k)] for k, v in metrics.items()],
            )
        baselines = tm.get("baselines") or {}
        if baselines:
            lines += ["", "Baselines:", ""]
            lines += _table(
                ["baseline", "metric", "value"],
                [
                    [b, k, _fmt(v)]
                    for b, vals in baselines.items()
                    for k, v in (vals.items() if isinstance(vals, Mapping) else [("", vals)])
                ],
            )
        if tm.get("problems"):
            lines += ["", "Validation problems:", ""] + [f"- {p}" for p in tm["problems"]]
        if tm.get("notes"):
            lines += ["", "Notes:", ""] + [f"- {n}" for n in tm["notes"]]
        if tm.get("reason"):
            lines += ["", f"Task remark: {tm['reason']}"]
        for plot in tm.get("plots") or []:
            lines += ["", f"![{Path(plot).stem}]({plot})"]
    return "\n".join(lines) + "\n"
