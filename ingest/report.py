"""What an ingest run reports: per-item failures (JSONL) and a summary whose counts reconcile.

``read = indexed + failed + skipped_unchanged`` always holds for a finished run (rows a resumed
run skipped because an earlier run acknowledged them are not read again; see
``resumed_from_row``).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

# Stages, in pipeline order ("image" is worker time divided by the number of workers).
STAGES = ("read", "lookup", "image", "encode_image", "encode_text", "attributes", "index")


@dataclass(frozen=True)
class Failure:
    item_id: str | None
    line: int
    stage: str  # validate | image | encode | index | update | delete
    reason: str
    code: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FailureWriter:
    """Appends failures to a JSONL file (thread-safe); ``offset`` is the bytes written so far."""

    def __init__(self, path: Path | None, *, resume_offset: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._fh: TextIO | None = None
        self._lock = threading.Lock()
        self.offset = 0
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_offset is not None and self.path.is_file():
            # keep what the acknowledged batches reported, drop anything after
            with self.path.open("r+b") as fh:
                fh.truncate(min(resume_offset, self.path.stat().st_size))
            self._fh = self.path.open("a", encoding="utf-8")
            self.offset = self.path.stat().st_size
        else:
            self._fh = self.path.open("w", encoding="utf-8")

    def write(self, failures: list[Failure]) -> None:
        if self._fh is None or not failures:
            return
        with self._lock:
            text = "".join(json.dumps(f.to_json(), ensure_ascii=False) + "\n" for f in failures)
            self._fh.write(text)
            self._fh.flush()
            self.offset += len(text.encode("utf-8"))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass
class IngestReport:
    """The summary of one run of ``ingest products`` / ``update`` / ``delete``."""

    command: str
    index: str
    catalog: str | None = None
    read: int = 0
    indexed: int = 0
    failed: int = 0
    skipped_unchanged: int = 0
    # details of ``indexed``
    encoded: int = 0  # items (re-)encoded and fully indexed
    partial_updates: int = 0  # content unchanged, other fields rewritten without encoding
    text_only: int = 0  # indexed without any image
    images_decoded: int = 0
    secondary_images_dropped: int = 0
    not_found: int = 0  # delete: ids that were not in the index
    resumed_from_row: int = 0
    completed: bool = False
    aborted_reason: str | None = None
    failures_by_code: dict[str, int] = field(default_factory=dict)
    failures_by_stage: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_items: dict[str, int] = field(default_factory=dict)
    wait_seconds: dict[str, float] = field(default_factory=dict)  # main thread blocked on ...
    model_load_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures_path: str | None = None
    checkpoint_path: str | None = None
    model_version: str | None = None
    peak_rss_mb: float | None = None
    # products read whose type got no outfit slot (engine.catalog.taxonomy): type -> count
    unmapped_types: dict[str, int] = field(default_factory=dict)
    # when the models were not fitted to this catalog: what to do (see engine.bundle)
    model_warning: str | None = None

    def add_failures(self, failures: list[Failure]) -> None:
        self.failed += len(failures)
        codes = Counter(self.failures_by_code)
        stages = Counter(self.failures_by_stage)
        for f in failures:
            codes[f.code] += 1
            stages[f.stage] += 1
        self.failures_by_code = dict(codes)
        self.failures_by_stage = dict(stages)

    def add_wait(self, what: str, seconds: float) -> None:
        self.wait_seconds[what] = self.wait_seconds.get(what, 0.0) + seconds

    def add_time(self, stage: str, seconds: float, items: int) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        self.stage_items[stage] = self.stage_items.get(stage, 0) + items

    @property
    def reconciles(self) -> bool:
        return self.read == self.indexed + self.failed + self.skipped_unchanged

    @property
    def items_per_second(self) -> float:
        return self.read / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def stage_rates(self) -> dict[str, float]:
        """Items per second of busy time for each stage (how fast it would run alone)."""
        return {
            s: (self.stage_items.get(s, 0) / t if t > 0 else 0.0)
            for s, t in self.stage_seconds.items()
        }

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["reconciles"] = self.reconciles
        d["items_per_second"] = round(self.items_per_second, 2)
        d["stage_rates"] = {k: round(v, 1) for k, v in self.stage_rates().items()}
        return d

    def summary(self) -> str:
        done = {"products": "indexed", "update": "updated", "delete": "deleted"}.get(
            self.command, "indexed"
        )
        lines = [
            f"{self.command} -> {self.index}"
            + (f" from {self.catalog}" if self.catalog else "")
            + ("" if self.completed else f"  [STOPPED: {self.aborted_reason or 'incomplete'}]"),
            f"  read {self.read} = {done} {self.indexed} + failed {self.failed}"
            f" + skipped_unchanged {self.skipped_unchanged}"
            + ("" if self.reconciles else "  (DOES NOT RECONCILE)"),
        ]
        if self.command == "products":
            lines.append(
                f"  indexed: {self.encoded} encoded, {self.partial_updates} updated without "
                f"re-encoding; {self.text_only} text-only (no image); "
                f"{self.images_decoded} images decoded"
                + (
                    f", {self.secondary_images_dropped} extra images dropped"
                    if self.secondary_images_dropped
                    else ""
                )
            )
        if self.command == "delete":
            lines.append(f"  not found: {self.not_found}")
        if self.resumed_from_row:
            lines.append(f"  resumed after row {self.resumed_from_row} (earlier rows not re-read)")
        if self.unmapped_types:
            shown = ", ".join(f"{k} ({v})" for k, v in list(self.unmapped_types.items())[:8])
            lines.append(
                f"  no outfit slot: {sum(self.unmapped_types.values())} products of "
                f"{len(self.unmapped_types)} types ({shown}); map them in the mapping file's "
                "[taxonomy] slots"
            )
        if self.model_warning:
            lines.append(f"  WARNING: {self.model_warning}")
        if self.failures_by_code:
            parts = ", ".join(f"{k}={v}" for k, v in sorted(self.failures_by_code.items()))
            lines.append(f"  failures by reason: {parts}")
            lines.append(f"  failure report: {self.failures_path or '(not written)'}")
        rates = self.stage_rates()
        if rates:
            parts = ", ".join(
                f"{s} {rates[s]:.1f}/s ({self.stage_seconds[s]:.1f}s)"
                for s in (*STAGES, *sorted(set(rates) - set(STAGES)))
                if s in rates
            )
            lines.append(f"  stages (items per busy second): {parts}")
        if self.wait_seconds:
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(self.wait_seconds.items()))
            lines.append(f"  main thread waited: {parts}")
        if self.model_load_seconds:
            lines.append(f"  model loaded in {self.model_load_seconds:.1f}s ({self.model_version})")
        after_load = self.wall_seconds - self.model_load_seconds
        if self.model_load_seconds and after_load > 0:
            lines.append(f"  after model load: {self.read / after_load:.1f} items/s")
        lines.append(
            f"  end to end: {self.items_per_second:.1f} items/s over {self.wall_seconds:.1f}s"
            + (f", peak RSS {self.peak_rss_mb:.0f} MB" if self.peak_rss_mb else "")
        )
        return "\n".join(lines)
