"""The one evaluator interface every task implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.catalog import Product
from engine.settings import Settings
from evaluation.datasets import EvalDataset, dataset_from_products


@dataclass
class EvalContext:
    """What a task gets: settings, the catalog, where photos and looks are, where to write."""

    settings: Settings
    catalog: list[Product]
    images_dir: Path
    out_dir: Path
    looks_path: Path | None = None
    seed: int = 0
    # Tasks may share expensive things (an indexed throw-away index, embeddings) here.
    cache: dict[str, Any] = field(default_factory=dict)
    # Cap on per-task work (queries, questions, timed requests); None = task default.
    limit: int | None = None
    # The catalog with its photo index and split views (built from ``catalog`` when None).
    dataset: EvalDataset | None = None

    def get_dataset(self) -> EvalDataset:
        """The evaluation dataset (photographed/test/train views of ``catalog``)."""
        if self.dataset is None:
            self.dataset = dataset_from_products(self.catalog, self.images_dir)
        return self.dataset

    def capped(self, default: int) -> int:
        """``default`` work items, or fewer when the run has a ``limit``."""
        return default if self.limit is None else max(0, min(default, self.limit))

    def plot_path(self, name: str) -> Path:
        """Where a task writes a PNG plot (``<out_dir>/plots/<name>.png``), folder created."""
        folder = self.out_dir / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}.png"


@dataclass
class TaskResult:
    """Metrics of one task. ``metrics=None`` with a ``reason`` when the task cannot run yet."""

    name: str
    metrics: dict[str, Any] | None
    primary: str | None = None
    reason: str | None = None
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Task(Protocol):
    def __call__(self, ctx: EvalContext) -> TaskResult: ...
