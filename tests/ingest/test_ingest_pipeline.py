"""The ingest pipeline's logic with an in-memory backend and a deterministic fake encoder (fast).

The real-cluster, real-model runs are in ``test_ingest_opensearch.py``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.backend import Backend
from engine.catalog import Product
from engine.errors import ClusterUnavailable, IngestAborted, InvalidInput
from engine.settings import IngestSettings, Settings
from ingest import __main__ as cli
from ingest.encode import PreparedImage
from ingest.pipeline import PipelineOptions, delete_products, ingest_products, update_products
from ingest.report import IngestReport

DIM = 16


class FakeBackend:
    """Just enough of engine.backend.Backend, in memory."""

    def __init__(self) -> None:
        self.indices: dict[str, dict[str, dict[str, Any]]] = {}
        self.bulk_calls = 0
        self.fail_bulk_at: int | None = None  # raise ClusterUnavailable on this call number
        self.settings: dict[str, dict[str, Any]] = {}
        self.refresh_during_bulk: set[Any] = set()
        self.merges: list[tuple[str, int]] = []

    def ensure_index(self, index: str) -> bool:
        created = index not in self.indices
        self.indices.setdefault(index, {})
        return created

    def index_exists(self, index: str) -> bool:
        return index in self.indices

    def mget(
        self, index: str, ids: list[str], source_excludes: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        docs = self.indices.get(index, {})
        out = {}
        for i in ids:
            if i in docs:
                out[i] = {k: v for k, v in docs[i].items() if k not in (source_excludes or [])}
        return copy.deepcopy(out)

    def bulk(
        self, actions: Iterable[Mapping[str, Any]], **kwargs: Any
    ) -> tuple[int, list[dict[str, Any]]]:
        batch = list(actions)
        if not batch:
            return 0, []
        self.bulk_calls += 1
        for a in batch:
            self.refresh_during_bulk.add(self.settings.get(a["_index"], {}).get("refresh_interval"))
        if self.fail_bulk_at is not None and self.bulk_calls >= self.fail_bulk_at:
            raise ClusterUnavailable("bulk indexing: cluster unreachable after 5 retries")
        ok, errors = 0, []
        for a in batch:
            docs = self.indices.setdefault(a["_index"], {})
            op, doc_id = a.get("_op_type", "index"), a["_id"]
            if op == "index":
                if a["_source"].get("title") == "REJECT ME":
                    errors.append({op: {"_id": doc_id, "status": 400, "error": {"type": "x"}}})
                    continue
                docs[doc_id] = copy.deepcopy(a["_source"])
            elif op == "update":
                if doc_id not in docs:
                    errors.append({op: {"_id": doc_id, "status": 404, "error": {"type": "dme"}}})
                    continue
                for k, v in a["doc"].items():
                    if v is None:
                        docs[doc_id].pop(k, None)
                    else:
                        docs[doc_id][k] = copy.deepcopy(v)
            elif op == "delete":
                if doc_id not in docs:
                    errors.append({op: {"_id": doc_id, "status": 404, "result": "not_found"}})
                    continue
                del docs[doc_id]
            ok += 1
        return ok, errors

    def refresh(self, index: str) -> None:
        pass

    def force_merge(self, index: str, max_segments: int = 1) -> None:
        self.merges.append((index, max_segments))

    # the real one: it only calls get_settings / put_settings below
    refresh_interval = Backend.refresh_interval

    def get_settings(self, index: str) -> dict[str, Any]:
        return {index: {"settings": {"index": dict(self.settings.get(index, {}))}}}

    def put_settings(self, index: str, body: dict[str, Any]) -> None:
        current = self.settings.setdefault(index, {})
        for k, v in body["index"].items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = v


def _vec(key: str) -> np.ndarray:
    seed = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeEncoder:
    dim = DIM

    def __init__(self, version: str = "fake-1") -> None:
        self.model_version = version
        self.encoded_texts: list[str] = []

    def text_for(self, product: Product) -> str:
        return f"{product.title}. {product.article_type or ''}. {product.description or ''}"

    def prepare_image(self, image: Image.Image) -> PreparedImage:
        arr = np.asarray(image.convert("RGB"), dtype=np.float32)
        return PreparedImage(image, arr.mean(axis=(0, 1)))

    def embed_prepared(self, images: Sequence[PreparedImage]) -> np.ndarray:
        return np.stack([_vec(str(p.colour.round(1).tolist())) for p in images]).reshape(-1, DIM)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded_texts.extend(texts)
        return np.stack([_vec(t) for t in texts]).reshape(-1, DIM)

    def attributes(self, embeddings: np.ndarray, top_k: int) -> list[dict[str, dict[str, float]]]:
        return [{"article_type": {"Shirts": 0.7, "Tshirts": 0.2, "Tops": 0.1}} for _ in embeddings]

    def codes(self, embeddings: np.ndarray) -> np.ndarray | None:
        return np.packbits(embeddings > 0, axis=1)


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buf, format="JPEG")
    return buf.getvalue()


def _write_catalog(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    images.mkdir()
    rows: list[Any] = []
    for i in range(20):
        pid = f"p{i:02d}"
        rows.append({"id": pid, "title": f"Shirt {i}", "article_type": "Shirts", "price": 100 + i})
        if i != 5:  # p05 has no photo: text-only
            (images / f"{pid}.jpg").write_bytes(_jpeg((10 * i, 50, 200 - 5 * i)))
    (images / "p07.jpg").write_bytes(b"garbage, not a jpeg")  # corrupt
    full = _jpeg((1, 2, 3))
    (images / "p08.jpg").write_bytes(full[: len(full) // 3])  # truncated
    rows.insert(3, '{"id": "bad", "title": ')  # malformed JSON, line 4
    rows.append({"id": "p01", "title": "duplicate"})
    rows.append({"id": "nt", "brand": "no title"})
    return {
        "catalog": _write_catalog(tmp_path / "catalog.jsonl", rows),
        "images": images,
        "state": tmp_path / "state",
    }


def _run(
    settings: Settings, data: dict[str, Path], backend: FakeBackend, **kw: Any
) -> IngestReport:
    kw.setdefault("encoder", FakeEncoder())
    return ingest_products(
        settings,
        data["catalog"],
        images_dir=data["images"],
        index="test-products",
        batch_size=kw.pop("batch_size", 4),
        state_dir=data["state"],
        backend=backend,  # type: ignore[arg-type]
        progress=False,
        **kw,
    )


def _failures(report: IngestReport) -> list[dict[str, Any]]:
    assert report.failures_path
    return [json.loads(x) for x in Path(report.failures_path).read_text().splitlines()]


def test_ingest_counts_failures_and_documents(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    r = _run(Settings(), data, backend)
    assert r.completed and r.reconciles
    assert r.read == 23
    assert r.indexed == 18 and r.failed == 5 and r.skipped_unchanged == 0
    assert r.text_only == 1 and r.encoded == 18
    assert r.failures_by_code == {
        "malformed_json": 1,
        "image_invalid": 2,
        "duplicate_id": 1,
        "missing_title": 1,
    }
    fails = {(f["item_id"], f["stage"], f["code"]) for f in _failures(r)}
    assert ("p07", "image", "image_invalid") in fails
    assert ("p08", "image", "image_invalid") in fails
    assert (None, "validate", "malformed_json") in fails
    lines = {f["item_id"]: f["line"] for f in _failures(r)}
    assert lines["p07"] == 9 and lines[None] == 4  # catalog line numbers
    docs = backend.indices["test-products"]
    assert len(docs) == 18 and "p07" not in docs
    text_only = docs["p05"]
    assert "image_embedding" not in text_only and "images" not in text_only
    assert len(text_only["text_embedding"]) == DIM
    d = docs["p03"]
    assert d["source_image_urls"][0].endswith("p03.jpg") and len(d["image_sha1"]) == 40
    assert d["predicted_category"] == "Shirts" and d["model_version"] == "fake-1"
    assert d["attr_prob"]["article_type"]["shirts"] == 0.7


def test_image_urls_follow_the_ingest_allow_list(tmp_path: Path) -> None:
    """An image URL on an internal host is a per-item url_not_allowed failure (never fetched)
    unless settings.ingest.url_allowed_hosts names the host."""
    photo, hits = _jpeg((200, 10, 10)), []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/u1.jpg"
        (tmp_path / "images").mkdir()
        rows = [{"id": "u1", "title": "Red shirt", "image_urls": [url]}]
        catalog = _write_catalog(tmp_path / "catalog.jsonl", rows)

        def run(settings: Settings, state: str) -> IngestReport:
            data = {"catalog": catalog, "images": tmp_path / "images", "state": tmp_path / state}
            return _run(settings, data, FakeBackend())

        refused = run(Settings(), "s1")
        assert refused.failures_by_code == {"url_not_allowed": 1} and hits == []
        [failure] = _failures(refused)
        assert failure["item_id"] == "u1" and "not allowed" in failure["reason"]
        allowed = run(Settings(ingest=IngestSettings(url_allowed_hosts=["127.0.0.1"])), "s2")
        assert allowed.indexed == 1 and allowed.failed == 0 and hits == ["/u1.jpg"]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_second_run_changes_nothing(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    _run(Settings(), data, backend)
    before = copy.deepcopy(backend.indices)
    enc = FakeEncoder()
    r = _run(Settings(), data, backend, encoder=enc)
    assert r.reconciles and r.indexed == 0 and r.skipped_unchanged == 18 and r.failed == 5
    assert enc.encoded_texts == []  # nothing re-encoded
    assert backend.indices == before


def test_changed_fields_and_images(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    _run(Settings(), data, backend)
    rows = [json.loads(x) for x in data["catalog"].read_text().splitlines() if x.endswith("}")]
    rows = [r for r in rows if r.get("id", "").startswith("p") and r.get("title") != "duplicate"]
    for r in rows:
        if r["id"] == "p01":
            r["price"] = 5  # business field: partial update, no encoding
        if r["id"] == "p02":
            r["title"] = "Shirt 2 renamed"  # text changes: re-encode
    (data["images"] / "p04.jpg").write_bytes(_jpeg((0, 255, 0)))  # new photo: re-encode
    _write_catalog(data["catalog"], rows)
    old_p01 = copy.deepcopy(backend.indices["test-products"]["p01"])
    enc = FakeEncoder()
    r = _run(Settings(), data, backend, encoder=enc)
    assert r.reconciles
    assert r.partial_updates == 1 and r.encoded == 2 and r.indexed == 3
    assert sorted(t.split(".")[0] for t in enc.encoded_texts) == ["Shirt 2 renamed", "Shirt 4"]
    p01 = backend.indices["test-products"]["p01"]
    assert p01["price"] == 5 and "discount_pct" not in p01
    assert p01["text_embedding"] == old_p01["text_embedding"]


def test_new_model_version_reencodes(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    _run(Settings(), data, backend)
    r = _run(Settings(), data, backend, encoder=FakeEncoder("fake-2"))
    assert r.encoded == 18 and r.skipped_unchanged == 0
    assert backend.indices["test-products"]["p00"]["model_version"] == "fake-2"


def test_cluster_loss_then_resume(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    backend.fail_bulk_at = 3  # the third bulk request finds the cluster gone
    with pytest.raises(IngestAborted, match="--resume") as exc:
        _run(Settings(), data, backend)
    partial: IngestReport = exc.value.report  # type: ignore[attr-defined]
    assert not partial.completed and partial.reconciles
    cp = json.loads(Path(partial.checkpoint_path or "").read_text())
    assert cp["rows_done"] == 8 and not cp["completed"]  # two acknowledged batches of 4 rows
    indexed_before = set(backend.indices["test-products"])
    assert len(indexed_before) == 7  # rows 0..7 minus the malformed line
    failures_before = _failures(partial)

    backend.fail_bulk_at = None
    r = _run(Settings(), data, backend, resume=True)
    assert r.completed and r.reconciles
    assert r.resumed_from_row == 8 and r.read == 23 - 8
    assert set(backend.indices["test-products"]) == {f"p{i:02d}" for i in range(20)} - {
        "p07",
        "p08",
    }
    # each failure reported exactly once across both runs
    all_fails = _failures(r)
    assert all_fails[: len(failures_before)] == failures_before
    keys = [(f["item_id"], f["line"]) for f in all_fails]
    assert len(keys) == len(set(keys)) == 5
    # a completed checkpoint: resuming again does nothing
    again = _run(Settings(), data, backend, resume=True)
    assert again.completed and again.read == 0


def test_resume_refuses_another_catalog(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    backend.fail_bulk_at = 2
    with pytest.raises(IngestAborted):
        _run(Settings(), data, backend)
    with data["catalog"].open("a") as fh:
        fh.write(json.dumps({"id": "new", "title": "new"}) + "\n")
    backend.fail_bulk_at = None
    with pytest.raises(InvalidInput, match="another catalog"):
        _run(Settings(), data, backend, resume=True)


def test_limit_leaves_checkpoint_open(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    r = _run(Settings(), data, backend, limit=6)
    assert r.read == 6 and r.reconciles
    cp = json.loads(Path(r.checkpoint_path or "").read_text())
    assert cp["rows_done"] == 6 and not cp["completed"]
    r2 = _run(Settings(), data, backend, resume=True)
    assert r2.read == 17 and r2.resumed_from_row == 6
    assert len(backend.indices["test-products"]) == 18


def test_rejected_documents_are_failures(data: dict[str, Path]) -> None:
    rows = [{"id": "a", "title": "fine"}, {"id": "b", "title": "REJECT ME"}]
    _write_catalog(data["catalog"], rows)
    backend = FakeBackend()
    r = _run(Settings(), data, backend)
    assert r.indexed == 1 and r.failed == 1 and r.reconciles
    assert r.failures_by_code == {"index_rejected": 1}
    assert r.encoded == 1 and r.text_only == 1


def test_update_and_delete(data: dict[str, Path], tmp_path: Path) -> None:
    backend = FakeBackend()
    _run(Settings(), data, backend)
    upd = _write_catalog(
        tmp_path / "prices.jsonl",
        [
            {"id": "p00", "price": 50, "discounted_price": 40},
            {"id": "p01", "in_stock": False},
            {"id": "p02", "price": 102},  # unchanged
            {"id": "zz", "price": 1},  # unknown id
            {"id": "p03", "price": "cheap"},  # wrong type
            {"id": "p04", "title": "no business field"},
            {"id": "p01", "sales": 3},  # duplicate
        ],
    )
    r = update_products(
        Settings(),
        upd,
        index="test-products",
        backend=backend,  # type: ignore[arg-type]
        failures_path=tmp_path / "uf.jsonl",
        progress=False,
    )
    assert r.reconciles and r.read == 7
    assert r.indexed == 2 and r.skipped_unchanged == 1 and r.failed == 4
    assert r.failures_by_code == {
        "not_found": 1,
        "invalid_field": 1,
        "no_business_fields": 1,
        "duplicate_id": 1,
    }
    docs = backend.indices["test-products"]
    assert docs["p00"]["price"] == 50 and docs["p00"]["discount_pct"] == 20.0
    assert docs["p01"]["in_stock"] is False and "text_embedding" in docs["p01"]

    ids = tmp_path / "ids.txt"
    ids.write_text("id\np00\n\np01\nnope\np00\n")
    r = delete_products(Settings(), ids, index="test-products", backend=backend)  # type: ignore[arg-type]
    assert r.reconciles and r.read == 4
    assert r.indexed == 2 and r.not_found == 1 and r.failed == 1
    assert "p00" not in docs and "p01" not in docs


def test_cli_exit_code_2_when_cluster_goes_away(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = _write_catalog(tmp_path / "c.jsonl", [{"id": "a", "title": "t"}])

    def fake_ingest(*args: Any, **kwargs: Any) -> IngestReport:
        exc = IngestAborted("ingest stopped: cluster unreachable; re-run with --resume")
        exc.report = IngestReport(command="products", index="x")  # type: ignore[attr-defined]
        raise exc

    monkeypatch.setattr(cli, "ingest_products", fake_ingest)
    monkeypatch.setattr(cli, "_prepare_cluster", lambda *a, **k: None)
    code = cli.main(["products", "--catalog", str(catalog), "--no-progress"])
    assert code == 2
    assert "--resume" in capsys.readouterr().err

    def bad_input(*args: Any, **kwargs: Any) -> IngestReport:
        raise InvalidInput("catalog file not found: x")

    monkeypatch.setattr(cli, "ingest_products", bad_input)
    assert cli.main(["products", "--catalog", str(catalog)]) == 1


def test_refresh_interval_slowed_during_ingest_and_restored(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    backend.settings["test-products"] = {"refresh_interval": "5s"}
    _run(Settings(), data, backend)
    assert backend.refresh_during_bulk == {"30s"}
    assert backend.settings["test-products"] == {"refresh_interval": "5s"}
    # a value left behind by an interrupted run is reset to the default, not kept
    backend.settings["test-products"] = {"refresh_interval": "30s"}
    backend.refresh_during_bulk.clear()
    _run(Settings(), data, backend, encoder=FakeEncoder("fake-2"))
    assert backend.refresh_during_bulk == {"30s"}
    assert backend.settings["test-products"] == {}
    # the operator's "-1" (refresh off) and PipelineOptions(bulk_refresh_interval=None) are kept
    backend.settings["test-products"] = {"refresh_interval": "-1"}
    _run(Settings(), data, backend, encoder=FakeEncoder("fake-3"))
    assert backend.settings["test-products"] == {"refresh_interval": "-1"}
    backend.settings["test-products"] = {}
    backend.refresh_during_bulk.clear()
    opts = PipelineOptions(bulk_refresh_interval=None)
    _run(Settings(), data, backend, encoder=FakeEncoder("fake-4"), options=opts)
    assert backend.refresh_during_bulk == {None} and backend.settings["test-products"] == {}


def test_force_merge_only_after_a_run_that_finished_the_catalog(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    _run(Settings(), data, backend)
    assert backend.merges == []  # off by default
    opts = PipelineOptions(force_merge_segments=1)
    backend.fail_bulk_at = 2
    with pytest.raises(IngestAborted):
        _run(Settings(), data, backend, encoder=FakeEncoder("fake-2"), options=opts)
    assert backend.merges == []  # an interrupted run does not merge
    backend.fail_bulk_at = None
    _run(Settings(), data, backend, encoder=FakeEncoder("fake-2"), options=opts, resume=True)
    assert backend.merges == [("test-products", 1)]


def test_refresh_interval_restored_when_the_cluster_goes_away(data: dict[str, Path]) -> None:
    backend = FakeBackend()
    backend.fail_bulk_at = 2
    with pytest.raises(IngestAborted):
        _run(Settings(), data, backend)
    assert backend.settings["test-products"] == {}


class CountingTextBackbone:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.stack([_vec(t) for t in texts]).astype(np.float32)


class IdentityModel:
    dim = DIM

    def embed_text_features(self, feats: np.ndarray) -> np.ndarray:
        return feats


def test_text_feature_cache_skips_the_backbone(tmp_path: Path) -> None:
    from engine.models.feature_cache import FeatureCache, text_key
    from ingest.encode import JointEncoder

    cache = FeatureCache(tmp_path / "text_minilm_v1.npz", DIM)
    cache.add([text_key("cached shirt")], _vec("cached shirt")[None, :] * 2)
    backbone = CountingTextBackbone()
    enc = JointEncoder(IdentityModel(), "v", text_backbone=backbone, text_cache=cache)
    out = enc.embed_texts(["cached shirt", "new dress", "new dress"])
    assert backbone.seen == ["new dress"]  # a hit and a duplicate miss: encoded once
    np.testing.assert_allclose(out[0], _vec("cached shirt") * 2)  # the cached row is used
    np.testing.assert_allclose(out[1], out[2])
    assert not (tmp_path / "text_minilm_v1.npz").exists()
    enc.flush()
    again = FeatureCache(tmp_path / "text_minilm_v1.npz", DIM)
    assert text_key("new dress") in again and len(again) == 2


def test_document_text_encoder_bypasses_minilm_and_its_cache(tmp_path: Path) -> None:
    """With a document text encoder (the static one), neither MiniLM nor its feature cache is
    touched: the MiniLM cache must only ever hold MiniLM features."""
    from engine.models.feature_cache import FeatureCache
    from ingest.encode import JointEncoder

    cache = FeatureCache(tmp_path / "text_minilm_v1.npz", DIM)
    minilm, static = CountingTextBackbone(), CountingTextBackbone()
    enc = JointEncoder(
        IdentityModel(), "v", text_backbone=minilm, text_cache=cache, document_text=static
    )
    out = enc.embed_texts(["red dress", "blue shirt"])
    assert static.seen == ["red dress", "blue shirt"] and minilm.seen == []
    np.testing.assert_allclose(out[0], _vec("red dress"))
    assert len(cache) == 0
    enc.flush()
    assert not (tmp_path / "text_minilm_v1.npz").exists()
