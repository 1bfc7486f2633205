"""PNG plots for evaluation reports (matplotlib, object API only: no pyplot global state).

Tasks call these with their measured numbers and return the paths in ``TaskResult.plots``;
the report links them. Use ``EvalContext.plot_path("<task>_<what>")`` for the file name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def recall_curves(
    curves: Mapping[str, Mapping[int, float]],
    path: Path,
    title: str = "Recall@K",
    ylabel: str = "recall",
) -> Path:
    """One line per system: ``{"system": {K: value}}`` (e.g. from ``metrics.recall_curve``)."""
    if not curves:
        raise ValueError("no curves to plot")
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


def latency_histograms(
    samples_ms: Mapping[str, Sequence[float]],
    path: Path,
    title: str = "Latency",
    bins: int = 30,
) -> Path:
    """One histogram per query type with its p50 and p99 marked."""
    series = {k: v for k, v in samples_ms.items() if len(v) > 0}
    if not series:
        raise ValueError("no latency samples to plot")
    fig = Figure(figsize=(6, 2.4 * len(series)))
    for i, (name, values) in enumerate(series.items(), start=1):
        arr = np.asarray(values, dtype=float)
        ax = fig.add_subplot(len(series), 1, i)
        ax.hist(arr, bins=bins, color="tab:blue", alpha=0.8)
        p50, p99 = np.percentile(arr, [50, 99])
        ax.axvline(float(p50), color="tab:green", linestyle="--", label=f"p50 {p50:.1f} ms")
        ax.axvline(float(p99), color="tab:red", linestyle="--", label=f"p99 {p99:.1f} ms")
        ax.set_title(f"{title}: {name} (n={arr.size})")
        ax.set_xlabel("ms")
        ax.legend()
    return _save(fig, path)


def category_bars(
    values: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    path: Path,
    title: str = "Per category",
    ylabel: str = "value",
    max_categories: int = 30,
) -> Path:
    """Bars per category: ``{category: value}`` or grouped ``{series: {category: value}}``.

    Categories are ordered by the first series' value (descending), at most ``max_categories``.
    """
    if not values:
        raise ValueError("no values to plot")
    first = next(iter(values.values()))
    grouped: dict[str, Mapping[str, float]]
    if isinstance(first, Mapping):
        grouped = {str(k): v for k, v in values.items() if isinstance(v, Mapping)}
    else:
        grouped = {ylabel: {str(k): float(v) for k, v in values.items()}}  # type: ignore[arg-type]
    lead = next(iter(grouped.values()))
    cats = sorted(lead, key=lambda c: -float(lead[c]))[:max_categories]
    x = np.arange(len(cats))
    width = 0.8 / len(grouped)
    fig = Figure(figsize=(max(6.0, 0.35 * len(cats) + 2), 4))
    ax = fig.add_subplot(1, 1, 1)
    for j, (name, series) in enumerate(grouped.items()):
        ax.bar(x + j * width, [float(series.get(c, 0.0)) for c in cats], width, label=name)
    ax.set_xticks(x + width * (len(grouped) - 1) / 2)
    ax.set_xticklabels(cats, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(grouped) > 1:
        ax.legend()
    return _save(fig, path)
