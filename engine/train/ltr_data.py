"""Training data for the LTR model: judgment lists and click logs (JSONL, see docs/LTR.md).

Click log, one impression a line::

    {"query_id": "q1", "doc_id": "15970", "position": 0, "clicked": true,
     "score": 7.2, "query": "navy shirt", "session": 3, "timestamp": 1700000000,
     "signals": {"bm25": 7.2, "text_sim": 0.83}, "features": {...}, "doc": {...},
     "simulated": false}

Judgment list, one graded (query, document) pair a line::

    {"query_id": "q1", "doc_id": "15970", "grade": 3, "score": 7.2, "position": 0,
     "signals": {...}, "features": {...}, "doc": {...}}

Required: ``query_id``, ``doc_id`` and ``position`` + ``clicked`` (clicks) or ``grade``
(judgments). The document fields come from ``doc``, else from a catalog or index lookup by
``doc_id``; ``features`` (value feature name -> number) override computed features.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.catalog.readers import RowFailure, json_lines
from engine.errors import InvalidInput
from engine.ltr.features import (
    VALUE_NAMES,
    Candidate,
    extract_features,
    refresh_derived,
    to_float,
)
from engine.ltr.model import LtrModel
from engine.ltr.rerank import RerankBlend, rerank
from engine.train.datagen.clicks import ClickRecord, SimList

JSON = dict[str, Any]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class ClickRow:
    query_id: str
    doc_id: str
    position: int
    clicked: bool
    score: float = float("nan")
    session: str | None = None
    timestamp: float | None = None
    signals: Mapping[str, float] = field(default_factory=dict)
    features: Mapping[str, float] = field(default_factory=dict)
    doc: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class JudgmentRow:
    query_id: str
    doc_id: str
    grade: float
    score: float = float("nan")
    position: int | None = None
    timestamp: float | None = None
    signals: Mapping[str, float] = field(default_factory=dict)
    features: Mapping[str, float] = field(default_factory=dict)
    doc: Mapping[str, Any] | None = None


def _numbers(obj: Any, what: str, line: int) -> dict[str, float]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InvalidInput(f"line {line}: {what} must be an object")
    return {str(k): to_float(v) for k, v in obj.items()}


def _common(raw: Mapping[str, Any], line: int) -> dict[str, Any]:
    for key in ("query_id", "doc_id"):
        if raw.get(key) in (None, ""):
            raise InvalidInput(f"line {line}: missing {key}")
    doc = raw.get("doc")
    if doc is not None and not isinstance(doc, dict):
        raise InvalidInput(f"line {line}: doc must be an object")
    ts = raw.get("timestamp")
    return {
        "query_id": str(raw["query_id"]),
        "doc_id": str(raw["doc_id"]),
        "score": to_float(raw.get("score")),
        "timestamp": None if ts is None else to_float(ts),
        "signals": _numbers(raw.get("signals"), "signals", line),
        "features": _numbers(raw.get("features"), "features", line),
        "doc": doc,
    }


def _position(value: Any, line: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"line {line}: position must be an integer >= 0")
    return value


def parse_click(raw: Any, line: int = 0) -> ClickRow:
    if not isinstance(raw, dict):
        raise InvalidInput(f"line {line}: not a JSON object")
    clicked = raw.get("clicked")
    if not isinstance(clicked, bool | int) or clicked not in (0, 1):
        raise InvalidInput(f"line {line}: clicked must be true/false")
    session = raw.get("session")
    return ClickRow(
        position=_position(raw.get("position"), line),
        clicked=bool(clicked),
        session=None if session is None else str(session),
        **_common(raw, line),
    )


def parse_judgment(raw: Any, line: int = 0) -> JudgmentRow:
    if not isinstance(raw, dict):
        raise InvalidInput(f"line {line}: not a JSON object")
    grade = to_float(raw.get("grade"))
    if math.isnan(grade) or grade < 0:
        raise InvalidInput(f"line {line}: grade must be a number >= 0")
    pos = raw.get("position")
    return JudgmentRow(
        grade=grade,
        position=None if pos is None else _position(pos, line),
        **_common(raw, line),
    )


def read_jsonl(path: Path) -> Iterable[tuple[int, Any]]:
    with Path(path).open("r", encoding="utf-8") as fh:
        for lineno, raw in json_lines(fh):
            if isinstance(raw, RowFailure):
                raise InvalidInput(f"{path}:{lineno}: {raw.reason}")
            yield lineno, raw


def read_clicks(path: Path) -> list[ClickRow]:
    return [parse_click(raw, n) for n, raw in read_jsonl(path)]


def read_judgments(path: Path) -> list[JudgmentRow]:
    return [parse_judgment(raw, n) for n, raw in read_jsonl(path)]


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            n += 1
    return n


# --------------------------------------------------------------------------- ranked lists


@dataclass
class RankedList:
    """One query's candidates in their original (shown) order, with labels for evaluation."""

    query_id: str
    candidates: list[Candidate]
    labels: dict[str, float]
    reference_time: float
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)

    def features(self) -> np.ndarray:
        x = extract_features(self.candidates, self.reference_time)
        if self.overrides:
            col = {n: j for j, n in enumerate(VALUE_NAMES)}
            for i, c in enumerate(self.candidates):
                for name, value in self.overrides.get(c.doc_id, {}).items():
                    if name in col:
                        x[i, col[name]] = value
            refresh_derived(x)
        return x


def lists_from_sim(lists: Sequence[SimList]) -> list[RankedList]:
    return [
        RankedList(s.query.query_id, list(s.candidates), dict(s.truth), s.reference_time)
        for s in lists
    ]


def _candidate(
    doc_id: str,
    score: float,
    doc: Mapping[str, Any] | None,
    signals: Mapping[str, float],
    docs: Mapping[str, Mapping[str, Any]],
) -> Candidate:
    return Candidate(doc_id, score, dict(doc if doc is not None else docs.get(doc_id, {})), signals)


def lists_from_judgments(
    rows: Sequence[JudgmentRow],
    docs: Mapping[str, Mapping[str, Any]] | None = None,
    reference_time: float = 0.0,
) -> list[RankedList]:
    """Per query: candidates ordered by ``position`` if given, else by ``score`` descending,
    else file order; labels = grades."""
    by_q: dict[str, list[tuple[int, JudgmentRow]]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_q[r.query_id].append((i, r))
    out: list[RankedList] = []
    for qid, items in by_q.items():

        def key(item: tuple[int, JudgmentRow]) -> tuple[float, int]:
            i, r = item
            if r.position is not None:
                return (float(r.position), i)
            return (-r.score if not math.isnan(r.score) else math.inf, i)

        items.sort(key=key)
        seen: set[str] = set()
        cands, labels, over = [], {}, {}
        times = [r.timestamp for _, r in items if r.timestamp is not None]
        for _, r in items:
            if r.doc_id in seen:
                continue
            seen.add(r.doc_id)
            cands.append(_candidate(r.doc_id, r.score, r.doc, r.signals, docs or {}))
            labels[r.doc_id] = r.grade
            if r.features:
                over[r.doc_id] = dict(r.features)
        out.append(RankedList(qid, cands, labels, max(times) if times else reference_time, over))
    return out


@dataclass
class TrainingSet:
    """Pointwise examples: raw feature rows, binary labels, weights, query groups."""

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    groups: np.ndarray

    @property
    def n_queries(self) -> int:
        return int(np.unique(self.groups).size)


def _stack(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]]) -> TrainingSet:
    if not parts:
        raise InvalidInput("no training examples")
    xs, ys, ws, gs = zip(*parts, strict=True)
    x = np.vstack(xs)
    keep = np.concatenate(ws) > 0
    return TrainingSet(
        x[keep],
        np.concatenate(ys)[keep],
        np.concatenate(ws)[keep],
        np.array([g for grp in gs for g in grp])[keep],
    )


def examined(rows: Sequence[ClickRow]) -> list[ClickRow]:
    """The "skip-above" heuristic (Joachims 2002): in a session, only impressions at or above
    its lowest click count as examined; sessions without a click say nothing and are dropped.
    Rows without a ``session`` are kept as they are."""
    last: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.session is not None and r.clicked:
            key = (r.query_id, r.session)
            last[key] = max(last.get(key, -1), r.position)
    return [
        r for r in rows if r.session is None or r.position <= last.get((r.query_id, r.session), -1)
    ]


def training_from_clicks(
    rows: Sequence[ClickRow],
    docs: Mapping[str, Mapping[str, Any]] | None = None,
    reference_time: float = 0.0,
    skip_above: bool = True,
) -> TrainingSet:
    """Aggregate impressions per (query, doc): label 1 weighted by clicks, label 0 weighted by
    impressions without a click. Each query's list is its docs by mean position (over all
    impressions); with ``skip_above`` only examined impressions (:func:`examined`) count."""
    agg: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    times: dict[str, float] = {}
    for r in rows:
        a = agg[r.query_id].setdefault(
            r.doc_id, {"imp": 0, "clk": 0, "pos": 0.0, "seen": 0, "row": r}
        )
        a["pos"] += r.position
        a["seen"] += 1
        if r.timestamp is not None and not math.isnan(r.timestamp):
            times[r.query_id] = max(times.get(r.query_id, r.timestamp), r.timestamp)
    for r in examined(rows) if skip_above else rows:
        a = agg[r.query_id][r.doc_id]
        a["imp"] += 1
        a["clk"] += int(r.clicked)
    parts = []
    for qid, per_doc in agg.items():
        ids = sorted(per_doc, key=lambda d: (per_doc[d]["pos"] / per_doc[d]["seen"], d))
        rows_of = {d: per_doc[d]["row"] for d in ids}
        rl = RankedList(
            qid,
            [
                _candidate(d, rows_of[d].score, rows_of[d].doc, rows_of[d].signals, docs or {})
                for d in ids
            ],
            {},
            times.get(qid, reference_time),
            {d: dict(rows_of[d].features) for d in ids if rows_of[d].features},
        )
        x = rl.features()
        clk = np.array([per_doc[d]["clk"] for d in ids], dtype=np.float64)
        imp = np.array([per_doc[d]["imp"] for d in ids], dtype=np.float64)
        n = len(ids)
        parts.append(
            (
                np.vstack([x, x]),
                np.concatenate([np.ones(n), np.zeros(n)]),
                np.concatenate([clk, imp - clk]),
                [qid] * (2 * n),
            )
        )
    return _stack(parts)


def training_from_lists(lists: Sequence[RankedList], max_grade: float | None = None) -> TrainingSet:
    """Graded labels as soft targets: label 1 weighted grade/max, label 0 weighted 1 - that."""
    top = max_grade or max((max(rl.labels.values(), default=0.0) for rl in lists), default=0.0)
    if top <= 0:
        raise InvalidInput("judgments need at least one grade > 0")
    parts = []
    for rl in lists:
        x = rl.features()
        g = np.array([min(rl.labels.get(c.doc_id, 0.0), top) / top for c in rl.candidates])
        n = len(rl.candidates)
        parts.append(
            (
                np.vstack([x, x]),
                np.concatenate([np.ones(n), np.zeros(n)]),
                np.concatenate([g, 1.0 - g]),
                [rl.query_id] * (2 * n),
            )
        )
    return _stack(parts)


# --------------------------------------------------------------------------- evaluation


def ndcg_at_k(ranked: Sequence[str], labels: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k with gain 2**label - 1 and log2 discount; ideal over the labelled items
    (the same definition as evaluation.metrics.ndcg_at_k)."""

    def dcg(gains: Sequence[float]) -> float:
        return sum((2.0**g - 1.0) / math.log2(i + 2) for i, g in enumerate(gains[:k]))

    ideal = dcg(sorted(labels.values(), reverse=True))
    if ideal <= 0:
        return 0.0
    return dcg([float(labels.get(d, 0.0)) for d in ranked]) / ideal


def evaluate(
    lists: Sequence[RankedList],
    model: LtrModel,
    blends: Sequence[RerankBlend],
    k: int = 10,
) -> JSON:
    """Mean nDCG@k of the original order and after re-ranking with each blend."""
    usable = [rl for rl in lists if any(v > 0 for v in rl.labels.values())]
    if not usable:
        raise InvalidInput("no evaluation query has a positive label")
    before = [ndcg_at_k([c.doc_id for c in rl.candidates], rl.labels, k) for rl in usable]
    after: dict[str, float] = {}
    for b in blends:
        vals = []
        for rl in usable:
            ranked = rerank(rl.candidates, model, blend=b, reference_time=rl.reference_time)
            vals.append(ndcg_at_k([r.doc_id for r in ranked], rl.labels, k))
        after[f"{b.ltr_weight:g}"] = float(np.mean(vals))
    return {
        "n_queries": len(usable),
        f"ndcg_at_{k}_before": float(np.mean(before)),
        f"ndcg_at_{k}_after_by_ltr_weight": after,
    }


def rows_from_sim(records: Iterable[ClickRecord]) -> list[ClickRow]:
    """Simulator records as click-log rows (what reading their JSONL would give)."""
    return [
        ClickRow(
            query_id=r.query_id,
            doc_id=r.doc_id,
            position=r.position,
            clicked=r.clicked,
            score=r.score,
            session=str(r.session),
            timestamp=r.timestamp,
            signals=r.signals,
        )
        for r in records
    ]
