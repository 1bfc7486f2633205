"""Run evaluation tasks and write ``metrics.json`` + ``report.md`` (+ ``plots/``).

Each task lives in ``evaluation.tasks.<name>`` and exposes ``run(ctx) -> TaskResult``. A task
that cannot run is reported as ``null`` with its reason, never skipped silently:

* its module does not exist yet, or importing it raises ``ImportError``;
* it raises ``ImportError``, :class:`~engine.errors.ModelUnavailable`,
  :class:`~engine.errors.ClusterUnavailable` or ``NotImplementedError`` (status
  ``unavailable``);
* it returns ``TaskResult(metrics=None, reason=...)`` (status ``unavailable``);
* it raises anything else (status ``error``: null with the error text, logged with traceback).

``metrics.json`` maps every requested task name to its metrics object (the fixed keys of
:data:`TASK_KEYS`, each a number or null) or null, plus ``"_meta"`` with per-task status,
reasons, timings, baselines, notes and plots, the catalog path and item counts.

The contract (task names and keys) is :mod:`evaluation.report_contract`; the markdown rendering
:mod:`evaluation.report_markdown`; this module runs the tasks and writes both files.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.catalog import CatalogMapping
from engine.errors import ClusterUnavailable, ModelUnavailable
from engine.settings import Settings
from evaluation.datasets import EvalDataset, load_dataset
from evaluation.report_contract import (
    KEY_DESCRIPTIONS,
    LATENCY_QUERY_TYPES,
    LATENCY_STATS,
    NESTED_KEYS,
    OPTIONAL_TASK_KEYS,
    PRIMARY,
    TASK_KEYS,
    TASK_NAMES,
)
from evaluation.report_markdown import render_markdown
from evaluation.tasks.base import EvalContext, TaskResult

logger = logging.getLogger(__name__)

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    ImportError,
    ModelUnavailable,
    ClusterUnavailable,
    NotImplementedError,
)

TaskFn = Callable[[EvalContext], TaskResult]


# --------------------------------------------------------------------------- registry


class TaskUnavailable(Exception):
    """A task that cannot be loaded (module missing, import failed, no ``run``)."""


@dataclass
class _Entry:
    target: TaskFn | str  # a callable, or the dotted path of a module exposing run()
    keys: tuple[str, ...] | None


class TaskRegistry:
    """Task name -> how to run it (a callable, or a module path resolved at run time)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(
        self,
        name: str,
        task: TaskFn | str,
        keys: Sequence[str] | None = None,
    ) -> None:
        """Add or replace a task. ``task`` is ``run(ctx) -> TaskResult`` or a module path.

        ``keys``: the metric keys to validate against (default: ``TASK_KEYS[name]`` for the
        fixed task names, none for other names).
        """
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"bad task name {name!r}")
        resolved = tuple(keys) if keys is not None else TASK_KEYS.get(name)
        self._entries[name] = _Entry(task, resolved)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def keys_for(self, name: str) -> tuple[str, ...] | None:
        return self._entries[name].keys

    def resolve(self, name: str) -> TaskFn:
        """The task's callable; ``TaskUnavailable`` with the reason when it cannot be loaded."""
        if name not in self._entries:
            raise TaskUnavailable(f"no task named {name!r} is registered")
        target = self._entries[name].target
        if callable(target):
            return target
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (target == exc.name or target.startswith(exc.name + ".")):
                raise TaskUnavailable(f"task module {target} does not exist yet") from exc
            raise TaskUnavailable(f"importing {target} failed: {exc}") from exc
        except ImportError as exc:
            raise TaskUnavailable(f"importing {target} failed: {exc}") from exc
        run = getattr(module, "run", None)
        if not callable(run):
            raise TaskUnavailable(f"task module {target} has no run(ctx) function")
        return run  # type: ignore[no-any-return]


def default_registry() -> TaskRegistry:
    """The fixed task names, each resolved from ``evaluation.tasks.<name>`` when run."""
    reg = TaskRegistry()
    for name in TASK_NAMES:
        reg.register(name, f"evaluation.tasks.{name}")
    return reg


def register_optional(reg: TaskRegistry, name: str) -> bool:
    """Add an optional task (:data:`OPTIONAL_TASK_KEYS`) by name; False when it is not one."""
    if name not in OPTIONAL_TASK_KEYS:
        return False
    if name not in reg:
        reg.register(name, f"evaluation.tasks.{name}", OPTIONAL_TASK_KEYS[name])
    return True


# --------------------------------------------------------------------------- validation


def _number(value: Any) -> float | int | None:
    """A finite JSON number, or None (also for bools, strings, NaN and inf)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _clean_number(key: str, value: Any, problems: list[str]) -> float | int | None:
    num = _number(value)
    if value is not None and num is None:
        problems.append(f"{key}: not a finite number ({value!r})")
    return num


def _clean_stats(
    key: str, value: Any, stats: Sequence[str], problems: list[str]
) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(f"{key}: expected an object with {', '.join(stats)}")
        return None
    obj: dict[str, Any] = {}
    for stat in stats:
        if stat not in value:
            problems.append(f"{key}.{stat}: missing")
        obj[stat] = _clean_number(f"{key}.{stat}", value.get(stat), problems)
    for extra, v in value.items():
        if str(extra) not in obj:
            obj[str(extra)] = _jsonable(v)
    return obj


def validate_metrics(
    name: str, metrics: Mapping[str, Any], keys: Sequence[str] | None
) -> tuple[dict[str, Any], list[str]]:
    """Normalise a task's metrics against its fixed keys.

    Returns the metrics to publish and the problems found. Every required key is present
    (missing ones become null and are reported); a required value must be a finite number
    (latency: an object with finite ``p50_ms`` and ``p99_ms``) or null, anything else becomes
    null and is reported. Extra keys are kept as plain JSON (e.g. per-category breakdowns).
    """
    problems: list[str] = []
    required = tuple(keys or ())
    stats = NESTED_KEYS.get(name)
    out: dict[str, Any] = {}
    for key in required:
        if key not in metrics:
            problems.append(f"{key}: missing")
            out[key] = None
        elif stats is not None:
            out[key] = _clean_stats(key, metrics[key], stats, problems)
        else:
            out[key] = _clean_number(key, metrics[key], problems)
    for key, value in metrics.items():
        if str(key) not in out:
            out[str(key)] = _jsonable(value)
    return out, problems


# --------------------------------------------------------------------------- running


@dataclass
class TaskOutcome:
    """What happened to one task in a report run."""

    name: str
    status: str  # "ok" | "unavailable" | "error"
    metrics: dict[str, Any] | None
    reason: str | None = None
    seconds: float = 0.0
    result: TaskResult | None = None
    problems: list[str] = field(default_factory=list)
    traceback: str | None = None


def run_task(name: str, registry: TaskRegistry, ctx: EvalContext) -> TaskOutcome:
    """Resolve and run one task; never raises (except KeyboardInterrupt/SystemExit)."""
    start = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - start

    try:
        fn = registry.resolve(name)
        logger.info("task %s: running", name)
        result = fn(ctx)
    except TaskUnavailable as exc:
        logger.warning("task %s unavailable: %s", name, exc)
        return TaskOutcome(name, "unavailable", None, str(exc), elapsed())
    except UNAVAILABLE_ERRORS as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        logger.warning("task %s unavailable: %s", name, reason)
        return TaskOutcome(name, "unavailable", None, reason, elapsed())
    except Exception as exc:
        logger.exception("task %s failed", name)
        return TaskOutcome(
            name,
            "error",
            None,
            f"error: {type(exc).__name__}: {exc}",
            elapsed(),
            traceback=traceback.format_exc(),
        )
    seconds = elapsed()
    if not isinstance(result, TaskResult):
        return TaskOutcome(
            name,
            "error",
            None,
            f"error: run() returned {type(result).__name__}, not TaskResult",
            seconds,
        )
    if result.metrics is None:
        reason = result.reason or "the task returned no metrics and gave no reason"
        logger.warning("task %s unavailable: %s", name, reason)
        return TaskOutcome(name, "unavailable", None, reason, seconds, result)
    if not isinstance(result.metrics, Mapping):
        return TaskOutcome(name, "error", None, "error: metrics is not an object", seconds, result)
    metrics, problems = validate_metrics(name, result.metrics, registry.keys_for(name))
    for p in problems:
        logger.warning("task %s: %s", name, p)
    logger.info("task %s: done in %.1fs", name, seconds)
    return TaskOutcome(name, "ok", metrics, result.reason, seconds, result, problems)


def _jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars -> Python, Paths -> str, non-finite floats -> None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, bool)) or value is None:
        return value
    num = _number(value)
    if num is not None:
        return num
    if isinstance(value, float):
        return None
    return str(value)


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def build_metrics_json(
    outcomes: Sequence[TaskOutcome],
    dataset: EvalDataset,
    out_dir: Path,
    run_info: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``metrics.json`` document."""
    doc: dict[str, Any] = {o.name: o.metrics for o in outcomes}
    tasks_meta: dict[str, Any] = {}
    for o in outcomes:
        r = o.result
        tasks_meta[o.name] = {
            "status": o.status,
            "reason": o.reason,
            "seconds": round(o.seconds, 3),
            "primary": (r.primary if r and r.primary else PRIMARY.get(o.name)),
            "baselines": r.baselines if r else {},
            "notes": r.notes if r else [],
            "plots": [_rel(p, out_dir) for p in (r.plots if r else [])],
            "task_seconds": r.seconds if r else None,
            "problems": o.problems,
            "traceback": o.traceback,
        }
    doc["_meta"] = {
        **run_info,
        "catalog": str(dataset.catalog_path) if dataset.catalog_path else None,
        "items": dataset.counts(),
        "reasons": {o.name: o.reason for o in outcomes if o.metrics is None},
        "timings_s": {o.name: round(o.seconds, 3) for o in outcomes},
        "baselines": {o.name: o.result.baselines for o in outcomes if o.result},
        "tasks": tasks_meta,
        "task_keys": {o.name: list(TASK_KEYS.get(o.name, ())) for o in outcomes},
    }
    return _jsonable(doc)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- entry


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def run_report(
    settings: Settings,
    catalog: Path,
    images: Path,
    out_dir: Path,
    *,
    looks: Path | None = None,
    tasks: Sequence[str] | None = None,
    seed: int = 0,
    limit: int | None = None,
    max_items: int | None = None,
    registry: TaskRegistry | None = None,
    mapping: CatalogMapping | None = None,
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Load the catalog, run the tasks in order, write ``metrics.json`` and ``report.md``.

    Returns the ``metrics.json`` document. ``tasks``: names to run (default: every registered
    task, the fixed six for the default registry); an unknown name raises ``ValueError``.
    """
    registry = registry if registry is not None else default_registry()
    names = list(tasks) if tasks is not None else registry.names()
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown task(s): {', '.join(unknown)}; known: {registry.names()}")
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(Path(catalog), Path(images), max_items=max_items, mapping=mapping)
    if looks is not None and not Path(looks).is_file():
        logger.warning("looks file %s does not exist; tasks will see looks_path=None", looks)
        looks = None
    ctx = EvalContext(
        settings=settings,
        catalog=dataset.products,
        images_dir=Path(images),
        out_dir=out_dir,
        looks_path=looks,
        seed=seed,
        limit=limit,
        dataset=dataset,
    )
    ctx.cache.update(extras or {})
    if mapping is not None:
        ctx.cache["taxonomy"] = mapping.build_taxonomy()
        ctx.cache["mapping"] = mapping
    logger.info("evaluating %d products (%s)", len(dataset), dataset.catalog_path)
    outcomes = [run_task(name, registry, ctx) for name in names]
    run_info = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "images": str(images),
        "looks": str(looks) if looks is not None else None,
        "seed": seed,
        "limit": limit,
        "max_items": max_items,
        "tasks_requested": names,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    doc = build_metrics_json(outcomes, dataset, out_dir, run_info)
    _write_atomic(out_dir / "metrics.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")
    _write_atomic(out_dir / "report.md", render_markdown(doc))
    logger.info("wrote %s and %s", out_dir / "metrics.json", out_dir / "report.md")
    return doc


__all__ = [
    "KEY_DESCRIPTIONS",
    "LATENCY_QUERY_TYPES",
    "LATENCY_STATS",
    "NESTED_KEYS",
    "PRIMARY",
    "TASK_KEYS",
    "TASK_NAMES",
    "TaskOutcome",
    "TaskRegistry",
    "TaskUnavailable",
    "build_metrics_json",
    "default_registry",
    "register_optional",
    "render_markdown",
    "run_report",
    "run_task",
    "validate_metrics",
]
