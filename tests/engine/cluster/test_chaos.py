"""Fault tests on a real 3-node loopback cluster (marker ``chaos``; issue 17).

The module starts the local cluster (``engine.cluster.multi``, HTTP 9211-9213, transport
9311-9313) unless it is already running, and stops it at the end when it started it. Every
test is bounded in requests and time; nothing leaves loopback. Numbers go to
``reports/chaos/*.json`` and are printed (``-s``)::

    python -m pytest tests/engine/cluster/test_chaos.py -m chaos -s
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.backend import Backend
from engine.cluster.local import _alive
from engine.cluster.multi import LocalCluster
from engine.config.desired import desired_objects
from engine.config.installer import apply, default_replicas
from engine.errors import IngestAborted
from engine.settings import PROJECT_ROOT, ClusterSettings, ModelSettings, Settings, load_settings
from ingest.encode import JointEncoder
from ingest.looks import ingest_looks_file
from ingest.pipeline import ingest_products
from ingest.product_stages import PipelineOptions
from ingest.report import IngestReport

pytestmark = [pytest.mark.chaos, pytest.mark.opensearch]

PREFIX = "outfitchaos"
SAMPLE = PROJECT_ROOT / "sample"
CATALOG = SAMPLE / "catalog.jsonl"
IMAGES = SAMPLE / "images"
REPORTS = PROJECT_ROOT / "reports" / "chaos"
SAMPLE_IDS = [json.loads(x)["id"] for x in CATALOG.read_text().splitlines() if x.strip()]


def _wait(what: str, cond: Callable[[], bool], timeout_s: float, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


def _write(name: str, data: dict[str, Any]) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(f"\n[chaos] {name}: {json.dumps(data)}")


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    base = load_settings()
    cluster = LocalCluster(base.local_node, base.local_cluster, nodes=3)
    started_here = any(m.read_pid() is None for m in cluster.members)
    cluster.up(status="green")
    yield cluster
    if started_here:
        pids = [m.read_pid() for m in cluster.members]
        cluster.down()
        assert not [p for p in pids if p is not None and _alive(p)], "a member process is left"


@pytest.fixture(scope="module")
def chaos_settings(local_cluster: LocalCluster) -> Settings:
    base = load_settings()
    cluster = ClusterSettings(url=local_cluster.url, index_prefix=PREFIX, timeout_s=30)
    models = ModelSettings(device="cpu", num_threads=2)
    return base.model_copy(update={"cluster": cluster, "models": models})


@pytest.fixture(scope="module")
def backend(chaos_settings: Settings) -> Backend:
    backend = Backend.from_settings(chaos_settings)
    backend.wait_for_health(timeout_s=120, status="green")
    replicas = default_replicas(backend)
    assert replicas == 1 and backend.data_nodes() == 3
    apply(backend, desired_objects(PREFIX, replicas))
    return backend


@pytest.fixture(scope="module")
def encoder(chaos_settings: Settings) -> JointEncoder:
    return JointEncoder.load(chaos_settings, batch_size=16)


@pytest.fixture(scope="module")
def catalog(
    chaos_settings: Settings,
    backend: Backend,
    encoder: JointEncoder,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[str]]:
    """The sample catalog and looks, ingested into the chaos indices with 1 replica (green)."""
    s = chaos_settings.cluster
    for index in (s.products_index, s.looks_index):
        backend.delete_index(index)
    report = ingest_products(
        chaos_settings,
        CATALOG,
        images_dir=IMAGES,
        index=s.products_index,
        batch_size=16,
        state_dir=tmp_path_factory.mktemp("state"),
        backend=backend,
        encoder=encoder,
        progress=False,
    )
    assert report.completed and report.indexed == len(SAMPLE_IDS)
    looks = ingest_looks_file(backend, chaos_settings, SAMPLE / "looks.jsonl")
    assert looks.indexed > 20
    backend.wait_for_health(timeout_s=120, status="green")
    settings = backend.get_settings(s.products_index)[s.products_index]["settings"]["index"]
    assert settings["number_of_replicas"] == "1"
    yield SAMPLE_IDS
    for index in (s.products_index, s.looks_index):
        backend.delete_index(index)


def _primary_holder(backend: Backend, cluster: LocalCluster, index: str) -> int:
    """The member index of the node holding the (one) primary shard of ``index``."""
    rows = backend.shard_copies(index)
    node = next(r["node"] for r in rows if r["prirep"] == "p" and r["state"] == "STARTED")
    return next(i for i, m in enumerate(cluster.members) if m.name == node)


def _node_ids(cluster: LocalCluster) -> dict[str, str]:
    return {r["name"]: r["id"] for r in cluster.status().members}


# ------------------------------------------------------------------------------ (a) queries
class _Load(threading.Thread):
    """Sends the requests in turn, one at a time, until stopped, ``max_requests`` or ``max_s``."""

    def __init__(
        self,
        client: TestClient,
        requests: list[tuple[str, Callable[[TestClient], Any]]],
        max_requests: int = 2000,
        max_s: float = 300.0,
    ) -> None:
        super().__init__(name="chaos-load", daemon=True)
        self.client = client
        self.requests = requests
        self.max_requests = max_requests
        self.max_s = max_s
        self.records: list[tuple[float, float, str, str]] = []  # start, ms, kind, outcome
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        i = 0
        while not self.stop.is_set() and i < self.max_requests and time.monotonic() < deadline:
            kind, send = self.requests[i % len(self.requests)]
            t0 = time.monotonic()
            try:
                r = send(self.client)
                outcome = "ok" if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
            except Exception as exc:  # noqa: BLE001 - a failed request, counted
                outcome = repr(exc)
            self.records.append((t0, (time.monotonic() - t0) * 1000.0, kind, outcome))
            i += 1

    def since(self, t: float) -> int:
        return sum(1 for r in self.records if r[0] >= t)


def _phase(records: list[tuple[float, float, str, str]]) -> dict[str, Any]:
    ms = np.array([r[1] for r in records]) if records else np.zeros(1)
    return {
        "requests": len(records),
        "failed": sum(1 for r in records if r[3] != "ok"),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def _requests(ids: list[str]) -> list[tuple[str, Callable[[TestClient], Any]]]:
    photo = (IMAGES / f"{ids[3]}.jpg").read_bytes()
    texts = ["black track pants", "red dress", "white sneakers for men", "blue denim shirt"]
    out: list[tuple[str, Callable[[TestClient], Any]]] = []
    for n, text in enumerate(texts):
        item = ids[(n * 37) % len(ids)]
        out += [
            ("text", lambda c, t=text: c.post("/search/text", json={"query": t, "size": 10})),
            (
                "photo",
                lambda c: c.post("/search/image", files={"file": ("q.jpg", photo, "image/jpeg")}),
            ),
            (
                "compose",
                lambda c, i=item: c.post(
                    "/search/compose", json={"item_id": i, "text": "in red", "size": 10}
                ),
            ),
            ("complete", lambda c, i=item: c.post("/complete-the-look", json={"item_id": i})),
        ]
    return out


def test_queries_survive_a_killed_node(
    local_cluster: LocalCluster,
    backend: Backend,
    chaos_settings: Settings,
    catalog: list[str],
) -> None:
    """Text, photo, compose and complete-the-look requests through the API while the node with
    the products primary is SIGKILLed and later restarted: no request fails."""
    products = chaos_settings.cluster.products_index
    ids_before = _node_ids(local_cluster)
    with TestClient(create_app(chaos_settings, backend=backend)) as client:
        reqs = _requests(catalog)
        for kind, send in reqs:  # warm-up: models loaded, every route answers
            r = send(client)
            assert r.status_code == 200, f"{kind}: {r.status_code} {r.text[:300]}"
        load = _Load(client, reqs)
        load.start()
        try:
            _wait("requests before the kill", lambda: len(load.records) >= 40, 120)
            victim = _primary_holder(backend, local_cluster, products)
            manager_before = local_cluster.status().cluster_manager
            t_kill = time.monotonic()
            assert local_cluster.kill_member(victim) is not None
            _wait("requests with the node down", lambda: load.since(t_kill) >= 40, 120)
            t_restart = time.monotonic()
            local_cluster.start_member(victim)  # waits until it has rejoined
            t_rejoined = time.monotonic()
            backend.wait_for_health(timeout_s=120, status="green")
            t_green = time.monotonic()
            _wait("requests after recovery", lambda: load.since(t_green) >= 40, 120)
        finally:
            load.stop.set()
            load.join(timeout=60)
    recs = load.records
    before = [r for r in recs if r[0] < t_kill]
    during = [r for r in recs if t_kill <= r[0] < t_green]
    after = [r for r in recs if r[0] >= t_green]
    result = {
        "victim": local_cluster.members[victim].name,
        "victim_was_cluster_manager": manager_before == local_cluster.members[victim].name,
        "cluster_manager_after": local_cluster.status().cluster_manager,
        "seconds_node_down": round(t_rejoined - t_kill, 1),
        "seconds_kill_to_green": round(t_green - t_kill, 1),
        "seconds_restart_to_rejoined": round(t_rejoined - t_restart, 1),
        "before": _phase(before),
        "during": _phase(during),
        "after": _phase(after),
        "during_by_kind": {k: _phase([r for r in during if r[2] == k]) for k in dict(reqs)},
        "total_requests": len(recs),
        "failures": [r[2:] for r in recs if r[3] != "ok"][:10],
    }
    _write("query_load", result)
    assert result["failures"] == [], result["failures"]
    assert result["during"]["requests"] >= 40
    # the restarted member is the same node (same name, same data folder: same node id)
    assert _node_ids(local_cluster) == ids_before


# ------------------------------------------------------------------------------ (b), (c) ingest
class _Ingest(threading.Thread):
    """One ``ingest_products`` run in a thread; its report or its error."""

    def __init__(self, run: Callable[[], IngestReport]) -> None:
        super().__init__(name="chaos-ingest", daemon=True)
        self._run = run
        self.report: IngestReport | None = None
        self.error: BaseException | None = None
        self.ended: float | None = None

    def run(self) -> None:
        try:
            self.report = self._run()
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            self.error = exc
        finally:
            self.ended = time.monotonic()


def _ingest_runner(
    settings: Settings,
    backend: Backend,
    encoder: JointEncoder,
    index: str,
    state: Path,
    options: PipelineOptions | None = None,
) -> Callable[..., IngestReport]:
    def run(resume: bool = False) -> IngestReport:
        return ingest_products(
            settings,
            CATALOG,
            images_dir=IMAGES,
            index=index,
            batch_size=16,
            resume=resume,
            state_dir=state,
            backend=backend,
            encoder=encoder,
            options=options,
            progress=False,
        )

    return run


def _rows_done(cp: Path) -> int:
    try:
        return int(json.loads(cp.read_text())["rows_done"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def _index_holds_exactly_the_sample(backend: Backend, index: str) -> dict[str, Any]:
    backend.refresh(index)
    ids = [doc_id for doc_id, _ in backend.iter_ids(index)]
    found = {
        "expected": len(SAMPLE_IDS),
        "count": backend.count(index),
        "scanned": len(ids),
        "distinct": len(set(ids)),
        "missing": sorted(set(SAMPLE_IDS) - set(ids))[:10],
        "unexpected": sorted(set(ids) - set(SAMPLE_IDS))[:10],
    }
    assert found["count"] == found["scanned"] == found["distinct"] == len(SAMPLE_IDS), found
    assert set(ids) == set(SAMPLE_IDS), found
    return found


def test_ingest_survives_a_node_killed_mid_run(
    local_cluster: LocalCluster,
    backend: Backend,
    chaos_settings: Settings,
    encoder: JointEncoder,
    catalog: list[str],
    tmp_path: Path,
) -> None:
    """A node (the one with the new index's primary) is SIGKILLed mid-ingest: the run goes on
    or stops with a --resume message; resumed, the index holds exactly the sample's ids."""
    index = f"{PREFIX}-products-ingestkill"
    backend.delete_index(index)
    state = tmp_path / "state"
    cp = state / f"{index}.checkpoint.json"
    run = _ingest_runner(chaos_settings, backend, encoder, index, state)
    t0 = time.monotonic()
    first = _Ingest(run)
    first.start()
    _wait("64 rows indexed", lambda: _rows_done(cp) >= 64 or not first.is_alive(), 180)
    assert first.is_alive(), f"ingest ended before the kill: {first.error or first.report}"
    victim = _primary_holder(backend, local_cluster, index)
    killed_at = _rows_done(cp)
    local_cluster.kill_member(victim)
    first.join(timeout=240)
    assert not first.is_alive(), "ingest did not end within 240 s of the kill"
    resumed: IngestReport | None = None
    if first.error is not None:
        assert isinstance(first.error, IngestAborted), repr(first.error)
        assert "--resume" in first.error.message
        resumed = run(resume=True)  # with the node still down
        assert resumed.completed and resumed.reconciles
    else:
        assert first.report is not None and first.report.completed
        assert first.report.failed == 0, first.report.summary()
    # checked with the node still down (yellow: every primary is there); the next test takes
    # the whole cluster down and up again, which restarts this node too
    backend.wait_for_health(timeout_s=120, status="yellow")
    found = _index_holds_exactly_the_sample(backend, index)
    _write(
        "ingest_node_kill",
        {
            "victim": local_cluster.members[victim].name,
            "rows_done_at_kill": killed_at,
            "first_run": "completed" if first.error is None else f"stopped: {first.error}",
            "resumed_from_row": resumed.resumed_from_row if resumed else None,
            "seconds": round(time.monotonic() - t0, 1),
            **found,
        },
    )
    backend.delete_index(index)


def test_ingest_stops_cleanly_when_the_cluster_goes_away_and_resume_loses_nothing(
    local_cluster: LocalCluster,
    backend: Backend,
    chaos_settings: Settings,
    encoder: JointEncoder,
    catalog: list[str],
    tmp_path: Path,
) -> None:
    """Every node is SIGKILLed mid-ingest: bounded retries, a clear stop naming --resume, an
    intact checkpoint; with the cluster back (same data), resume completes the sample exactly.
    (A member may already be down from the previous test: the ingest starts on the others.)"""
    index = f"{PREFIX}-products-clustergone"
    backend.delete_index(index)
    state = tmp_path / "state"
    cp = state / f"{index}.checkpoint.json"
    options = PipelineOptions(bulk_retries=3, bulk_backoff_s=0.5)
    run = _ingest_runner(chaos_settings, backend, encoder, index, state, options)
    first = _Ingest(run)
    first.start()
    _wait("64 rows indexed", lambda: _rows_done(cp) >= 64 or not first.is_alive(), 180)
    assert first.is_alive(), f"ingest ended before the kill: {first.error or first.report}"
    t_kill = time.monotonic()
    for i in range(len(local_cluster.members)):
        local_cluster.kill_member(i)
    first.join(timeout=120)
    assert not first.is_alive(), "ingest did not stop within 120 s of losing the cluster"
    assert first.ended is not None
    stopped_after = first.ended - t_kill
    assert isinstance(first.error, IngestAborted), repr(first.error or first.report)
    assert "--resume" in first.error.message and "unreachable" in first.error.message
    rows_at_stop = _rows_done(cp)
    assert 64 <= rows_at_stop < len(SAMPLE_IDS)

    t_up = time.monotonic()
    local_cluster.up(status="yellow")  # every member again, same names and data
    backend.wait_for_health(timeout_s=120, status="green")
    seconds_back = time.monotonic() - t_up
    resumed = run(resume=True)
    assert resumed.completed and resumed.reconciles
    assert resumed.resumed_from_row == rows_at_stop
    assert resumed.read == len(SAMPLE_IDS) - rows_at_stop
    found = _index_holds_exactly_the_sample(backend, index)
    _write(
        "ingest_cluster_gone",
        {
            "rows_done_at_stop": rows_at_stop,
            "seconds_kill_to_clear_stop": round(stopped_after, 1),
            "message": first.error.message,
            "seconds_cluster_back_green": round(seconds_back, 1),
            "resumed_from_row": resumed.resumed_from_row,
            **found,
        },
    )
    backend.delete_index(index)
